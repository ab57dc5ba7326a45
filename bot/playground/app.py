"""Run the real bot against a local fake Discord and show its channel in the browser.

One process, one event loop: the FakeDiscord server (REST + gateway on 127.0.0.1, random port), the
unmodified :class:`bot.bot.MorphBot` connected to it with the fake's token, and the playground's web page
(:mod:`bot.playground.server`). Its database and artifacts live in a temporary folder removed on exit,
because the fake's guild, members and messages exist only while the process runs.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.playground.guard import is_loopback
from bot.playground.page import store_jobs
from bot.playground.server import PlaygroundServer
from morph.request import MorphError

if TYPE_CHECKING:
    from bot.bot import MorphBot
    from fakediscord import FakeChannel, FakeDiscord, FakeGuild
    from morph import Morpher

log = logging.getLogger(__name__)

TOY, TINY = "toy", "tiny"
REAL_MODEL_HINT = ("set MORPH_MODEL=stable-diffusion-v1-5/stable-diffusion-v1-5 (or a local path to a "
                   "Stable Diffusion 1.x/2.x model) and start again")
#: Commands the page suggests (placeholder, Commands panel): prompts the model knows. The first is the default.
EXAMPLES = {
    TOY: ('/morph "a red circle" "a blue square"',
          '/morph "a big yellow star on a black background" "a small white heart on a blue background"',
          '/morph "a green ring" "a pink cross" pacing:uniform',
          '/morph "an orange triangle on a white background" "a purple diamond on a white background"'),
}
OTHER_EXAMPLES = ("/morph dog cat frames:16 seed:3",)
#: What the start-up message says after the model's name.
MODEL_NOTES = {TOY: " (trained on coloured shapes, offline)", TINY: " (untrained, offline)"}
#: The simulated people in the channel: (name, permissions). The first one is who the page starts as.
#: (name, permissions, the language of their Discord client): Yuki's Discord is in Japanese, so the bot answers
#: her privately in Japanese (the channel's public posts stay in the server's language)
MEMBERS = (("Ada", ["manage_guild"], "en-US"), ("Bob", None, "en-US"), ("Cleo", None, "en-GB"), ("Yuki", None, "ja"))


def model_banner(model: str, reason: str | None = None) -> str | None:
    """The notice shown above the channel for the built-in models (None for a real model that loaded)."""
    if model == TOY:
        text = ("**Images come from `toy`, a small model trained here on coloured shapes**: a circle, square, "
                "triangle, star, heart, ring, cross or diamond in red, orange, yellow, green, blue, purple, pink, "
                "white, black or gray, small or big, on a background of another colour. Try the prompts under "
                f"Commands. To see real pictures, {REAL_MODEL_HINT}. Its image safety filter is a stand-in that "
                "treats **yellow stars** as unsafe: frames with one are withheld in #morph; #after-dark (in the "
                "channel list) is age-restricted and shows them once an admin (Ada) sets /morphadmin limits "
                "nsfw:allow.")
    elif model == TINY:
        text = (f"**Images come from an untrained offline model (tiny)**: random weights, so expect coloured "
                f"noise, not pictures. To see real images, {REAL_MODEL_HINT}.")
    else:
        return None
    if reason:
        text += f" ({reason})"
    return text


def examples(model: str) -> list[str]:
    return list(EXAMPLES.get(model, OTHER_EXAMPLES))


def load_morpher(model: str, device: str | None = None) -> tuple[Morpher, str | None]:
    """Load ``model``; if it cannot be loaded, ``toy`` instead (and ``tiny`` if even that fails).
    Returns (morpher, banner or None); ``morpher.model`` says which one loaded.

    The banner is None only when a requested model other than the built-in ones loaded.
    """
    from morph import Morpher

    reason = None
    for candidate in dict.fromkeys([model or TOY, TOY, TINY]):
        try:
            morpher = Morpher(candidate, device=device)
        except MorphError as err:
            if candidate == TINY:
                raise
            log.warning("could not load MORPH_MODEL=%s (%s); trying the next model", candidate, err)
            print(f"playground: could not load {candidate}: {err}", file=sys.stderr, flush=True)
            reason = reason or f"MORPH_MODEL={candidate} could not be loaded: {err}"
            continue
        if reason:
            print(f"playground: using the built-in model {candidate} instead", file=sys.stderr, flush=True)
        return morpher, model_banner(candidate, reason)
    raise AssertionError("unreachable: tiny is built in-process")


class Playground:
    """The fake Discord, the bot and the web page, started and stopped together.

    ``morpher_factory``/``banner``/``model`` let a caller (a test) supply an already chosen model;
    otherwise :func:`load_morpher` decides at :meth:`start`.
    """

    def __init__(self, settings, *, host: str = Settings.playground_host,
                 port: int = Settings.playground_port,
                 morpher_factory: Callable[[], object] | None = None, banner: str | None = None,
                 model: str | None = None, data_dir: str | os.PathLike | None = None) -> None:
        self.settings = settings
        self.host, self.port = host, port
        self.morpher_factory = morpher_factory
        self.banner = banner
        self.model = model or settings.model
        self._data_dir = Path(data_dir) if data_dir else None
        self._tmp: str | None = None
        self.fake: FakeDiscord | None = None
        self.bot: MorphBot | None = None
        self.server: PlaygroundServer | None = None
        self.guild: FakeGuild | None = None
        self.channel: FakeChannel | None = None
        self.members: list = []
        self._bot_task: asyncio.Task | None = None
        self.url: str | None = None

    async def start(self) -> str:
        """Start everything; returns the page URL once the bot is connected and its commands are synced."""
        from bot.bot import MorphBot
        from bot.endpoints import use_discord_endpoints
        from fakediscord import FakeDiscord

        if not is_loopback(self.host) and not self.settings.playground_allow_remote:
            raise MorphError(f"PLAYGROUND_HOST={self.host} can be reached from other machines, and anyone there "
                             "could use the playground as any of its members. Use 127.0.0.1, or set "
                             "PLAYGROUND_ALLOW_REMOTE=1 to allow it.")
        if self.morpher_factory is None:
            print(f"playground: loading model {self.model!r}…", flush=True)
            morpher, self.banner = await asyncio.to_thread(
                load_morpher, self.model, getattr(self.settings, "device", None))
            self.model = morpher.model
            self.morpher_factory = lambda: morpher

        if self._data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="morph-playground-")
            self._data_dir = Path(self._tmp)
        settings = self.settings.replace(
            db_path=self._data_dir / "playground.sqlite3", data_dir=self._data_dir / "artifacts",
            dev_guild_id=None, discord_token="")

        self.fake = fake = await FakeDiscord(bot_name="morph-bot").start("127.0.0.1", 0)
        self.guild = guild = fake.add_guild("Playground")
        self.channel = channel = guild.add_channel("morph")
        #: age-restricted (Discord's nsfw flag): where an admin may allow unfiltered results
        self.restricted_channel = guild.add_channel("after-dark", nsfw=True)
        self.members = [guild.add_member(name, permissions=perms, locale=locale) for name, perms, locale in MEMBERS]
        settings = settings.replace(api_base=fake.api_base, gateway_url=fake.gateway_url)
        use_discord_endpoints(fake.api_base, fake.gateway_url)

        self.bot = bot = MorphBot(settings, morpher_factory=self.morpher_factory, guild_ready_timeout=0.1)
        self._bot_task = bot_task = asyncio.create_task(bot.start(fake.bot_token), name="morph-bot")
        ready = asyncio.create_task(fake.wait_until_ready(timeout=60))
        done, _ = await asyncio.wait({ready, bot_task}, return_when=asyncio.FIRST_COMPLETED)
        if bot_task in done:  # the bot stopped before it was ready: show why
            ready.cancel()
            bot_task.result()
            raise RuntimeError("the bot stopped while starting")
        ready.result()

        users = {m.id: m.name for m in self.members}
        self.server = PlaygroundServer(
            fake, guild, channel, self.members, banner=self.banner, model=self.model,
            examples=examples(self.model), others=[self.restricted_channel],
            jobs=store_jobs(lambda: getattr(self.bot, "store", None), guild.id, users))
        self.url = await self._listen()
        return self.url

    async def _listen(self) -> str:
        """The configured port, or any free one when it is taken."""
        server = self.server
        if server is None:
            raise RuntimeError("no playground server to start")
        try:
            return await server.start(self.host, self.port)
        except OSError as err:
            if self.port == 0 or err.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            print(f"playground: port {self.port} is taken, using a free one", file=sys.stderr, flush=True)
            return await server.start(self.host, 0)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.bot is not None:
            with contextlib.suppress(Exception):
                await self.bot.close()
        if self._bot_task is not None:
            self._bot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._bot_task
        if self.fake is not None:  # start() pointed discord.py at it: point it back
            from bot.endpoints import use_discord_endpoints

            await self.fake.stop()
            use_discord_endpoints(None, None)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    async def __aenter__(self) -> Playground:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


def run_playground(settings) -> int:
    """``morph-bot --playground``: run until Ctrl-C. Returns the process exit status."""
    host, port = settings.playground_host, settings.playground_port  # PLAYGROUND_HOST / _PORT

    async def main() -> int:
        from bot.aio import stop_on_signals

        pg = Playground(settings, host=host, port=port)
        # SIGINT (Ctrl-C) and SIGTERM both cancel this task, during start-up too, and stop it cleanly.
        with stop_on_signals() as stopping:
            try:
                url = await pg.start()
                if not is_loopback(host):  # allowed by PLAYGROUND_ALLOW_REMOTE=1 (Playground.start checks)
                    print(f"playground: WARNING: listening on {host}, reachable from other machines",
                          file=sys.stderr, flush=True)
                line = "=" * 64
                print(f"\n{line}\n  morph bot playground (no Discord needed): open {url}\n"
                      f"  model: {pg.model}{MODEL_NOTES.get(pg.model, '')}\n"
                      f"  try: {examples(pg.model)[0]}\n"
                      f"  Ctrl-C stops it.\n{line}\n", flush=True)
                bot_task = pg._bot_task
                assert bot_task is not None  # start() returned: the bot runs
                await asyncio.wait({bot_task})  # (a signal cancels the wait, not the bot: pg.stop() closes it)
                error = None if bot_task.cancelled() else bot_task.exception()
                if error is not None:
                    raise error
                return 0
            except asyncio.CancelledError:
                if not stopping:
                    raise
                print("playground: stopping…", flush=True)
                return 0
            finally:
                await pg.stop()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    except MorphError as err:
        print(f"morph-bot: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"morph-bot: cannot start the playground on {host}:{port}: {err}", file=sys.stderr)
        return 1

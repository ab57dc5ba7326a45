"""Helpers for the end-to-end tests: the real MorphBot (or ``python -m bot`` in a subprocess) against the fake Discord.

Only discord.py's endpoints are changed (``bot.endpoints.use_discord_endpoints``); everything else is the
bot as shipped: SQLite file, worker, the ``tiny`` model on CPU, delivery, cogs and components.
"""
from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

from PIL import Image, ImageSequence

from bot.messages import QUEUE_UNAVAILABLE, RESULT_MARKER_RE
from fakediscord import FakeDiscord, FakeMessage, eventually
from testkit.process import REPO, BotProcess, bot_env  # noqa: F401 - the tests' helpers in one place

#: names discord.py gives the tasks that run event listeners, component callbacks and slash commands
HANDLER_TASKS = ("discord.py: on_", "discord-ui-", "CommandTree-invoker")


def is_result(m: FakeMessage, job_id: int) -> bool:
    """``m`` is the result message of ``job_id`` (it starts with the bot's result marker)."""
    match = RESULT_MARKER_RE.match(m.content or "")
    return match is not None and int(match.group(1)) == job_id


def result_messages(fake: FakeDiscord, job_id: int) -> list[FakeMessage]:
    """Every result message of ``job_id`` the bot posted (exactly-once delivery: there should be one)."""
    return [m for m in fake.all_messages() if is_result(m, job_id)]


class Harness:
    """A fake Discord with one guild, plus the MorphBot under test running in this event loop."""

    def __init__(self, fake: FakeDiscord, tmp: Path, morpher):
        self.fake, self.tmp, self.morpher = fake, tmp, morpher
        self.guild = fake.add_guild("Morph Club")
        # the bot gets exactly what its invite URL asks for: the tests prove that is enough
        from bot.bot import bot_permissions

        self.guild.bot_role.permissions = bot_permissions().value
        self.channel = self.guild.default_channel
        self.bot = None
        self._task: asyncio.Task | None = None

    def settings(self, **overrides):
        from bot.config import Settings

        base = dict(discord_token=self.fake.bot_token, db_path=self.tmp / "morph.sqlite3",
                    data_dir=self.tmp / "artifacts", model="tiny", device="cpu", default_frames=6,
                    default_steps=2, cooldown_s=0.0, pick_cooldown_s=0.0, max_user_active=2, max_guild_queue=20,
                    api_base=self.fake.api_base, gateway_url=self.fake.gateway_url)
        base.update(overrides)
        return Settings(**base)

    async def start_bot(self, *, fake_clock: bool = False, **overrides):
        """Start MorphBot; ``fake_clock=True`` gives its Store the fake's clock (``fake.clock.advance``
        then moves time for the bot too, e.g. past the 15-minute interaction token lifetime)."""
        from bot.bot import MorphBot
        from bot.store import Store

        settings = self.settings(**overrides)
        self._store = None
        if fake_clock:
            self._store = await Store.open(settings.db_path, settings, clock=self.fake.clock.time)
        self.bot = MorphBot(settings, morpher_factory=lambda: self.morpher, store=self._store,
                            guild_ready_timeout=0.1)
        self._task = asyncio.create_task(self.bot.start(self.fake.bot_token))
        await self.fake.wait_until_ready(timeout=20)
        await asyncio.wait_for(self.bot.wait_until_ready(), 20)
        return self.bot

    async def stop_bot(self, *, drop_pending_edits: bool = False):
        """Stop the bot as a shutdown does. ``drop_pending_edits`` (the fixture's teardown) drops the status
        edits still waiting for their throttle interval instead of waiting up to 2 s for them: nothing looks
        at them once the test is over."""
        if self.bot is not None:
            if drop_pending_edits and self.bot.delivery is not None:
                self.bot.delivery.editor.cancel()
            await self.bot.close()
            await asyncio.wait_for(self._task, 20)
            self.bot = None
        if getattr(self, "_store", None) is not None:
            await self._store.close()
            self._store = None

    async def settled(self, timeout: float = 30.0) -> None:
        """Every gateway event the fake has sent so far has reached the bot, and every handler discord.py
        started for one (events, slash commands, components) has finished.

        For "nothing else happened" checks: whatever those events make the bot do has been done by then,
        however slow the machine, so the check cannot pass just because it looked too early."""
        session = self.fake.sessions[-1]

        def quiet() -> bool:
            if (self.bot.ws.sequence or 0) < session.seq:
                return False
            me = asyncio.current_task()
            return not any(t is not me and not t.done() and t.get_name().startswith(HANDLER_TASKS)
                           for t in asyncio.all_tasks())

        assert await eventually(quiet, timeout, interval=0.01), "the bot is still handling events"

    @property
    def store(self):
        return self.bot.store if self.bot is not None else self._store

    async def result_message(self, job_id: int, timeout: float = 60.0) -> FakeMessage:
        """The result message of ``job_id`` (starts with the result marker and carries the GIF)."""
        return await self.fake.wait_for_message(lambda m: is_result(m, job_id) and bool(m.attachments), timeout)

    async def job_count(self) -> int:
        """How many jobs the bot's database holds (every state)."""
        return await self.store.db.fetchval("SELECT COUNT(*) FROM jobs")

    def result_messages(self, job_id: int) -> list[FakeMessage]:
        return result_messages(self.fake, job_id)

    async def wait_state(self, job_id: int, states, timeout: float = 60.0):
        states = {states} if isinstance(states, str) else set(states)

        async def reached():
            job = await self.store.get(job_id)
            return job if job is not None and job.state in states else None

        job = await eventually(reached, timeout, interval=0.05)
        if job is None:
            job = await self.store.get(job_id)
            raise TimeoutError(f"job {job_id} is {job and job.state}, not {states}")
        return job


def assert_unavailable(it) -> None:
    """``it`` was answered within Discord's 3 s, privately, with "unavailable for a moment" (the database
    could not be reached)."""
    assert it.latency is not None and it.latency < 3.0, it.latency
    assert it.response_type == 4 and it.ephemeral, (it.response_type, it.ephemeral)
    assert it.original.content == QUEUE_UNAVAILABLE, it.original.content


def job_id_of(text: str) -> int:
    import re

    m = re.search(r"#(\d+)", text or "")
    assert m, f"no job id in {text!r}"
    return int(m.group(1))


def gif_frames(data: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "GIF"
        return [f.convert("RGB") for f in ImageSequence.Iterator(im)]


def png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG"
    im.load()
    return im


def db_job(db_path: Path, job_id: int) -> dict:
    """A job row read straight from the SQLite file (another process owns the Store)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return dict(row) if row else {}
    finally:
        conn.close()


def texts_of(message: FakeMessage) -> list[str]:
    """Everything a member reads on a message, over all its versions: content, embed titles, button
    labels, menu placeholders and options."""
    out = [snap.get("content") or "" for snap in message.history] + [message.content or ""]
    out += [e.get("title") or "" for e in message.embeds]
    for c in message.iter_components():
        out += [c.get("label") or "", c.get("placeholder") or ""]
        out += [o.get("label") or "" for o in c.get("options") or []]
    return [t for t in out if t]


def is_japanese(text: str) -> bool:
    return re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text or "") is not None

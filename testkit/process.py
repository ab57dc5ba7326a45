"""The bot as its own OS process (``python -m bot``) pointed at a :class:`~fakediscord.FakeDiscord` running in
this process: for end-to-end tests of what only a real process shows (signals, exit status, hangs at exit)
and for benchmarks where the fake's own work must not share the bot's event loop."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from fakediscord.fake import FakeDiscord

REPO = Path(__file__).resolve().parents[1]


def bot_env(fake: FakeDiscord, tmp: Path, **extra) -> dict:
    """Environment for ``python -m bot`` pointing at the fake (``extra`` overrides, e.g. ``MORPH_DB=…``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "MORPH_"))}
    env.update({
        "DISCORD_TOKEN": fake.bot_token, "DISCORD_API_BASE": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url, "MORPH_DB": str(tmp / "morph.sqlite3"),
        "MORPH_DATA_DIR": str(tmp / "artifacts"), "MORPH_MODEL": "tiny", "MORPH_DEVICE": "cpu",
        "MORPH_COOLDOWN_S": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1",
        "LOG_LEVEL": "INFO",
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


class BotProcess:
    """``python -m bot`` (or ``python -m <module>``) in a subprocess pointed at the fake (log in
    ``tmp/bot-N.log``)."""

    count = 0

    def __init__(self, fake: FakeDiscord, tmp: Path, *, module: str = "bot", **env):
        self.fake, self.tmp, self.env, self.module = fake, tmp, bot_env(fake, tmp, **env), module
        self.proc: asyncio.subprocess.Process | None = None
        BotProcess.count += 1
        self.log_path = tmp / f"bot-{BotProcess.count}.log"

    async def spawn(self) -> BotProcess:
        """Start the process and return at once (:meth:`start` also waits until it is connected)."""
        self._log = open(self.log_path, "wb")  # noqa: ASYNC230 — a local file for the child's output
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, cwd=str(self.tmp), env=self.env, stdout=self._log,
            stderr=asyncio.subprocess.STDOUT)
        return self

    @property
    def process(self) -> asyncio.subprocess.Process:
        if self.proc is None:
            raise RuntimeError("the bot process was not started (call spawn() or start())")
        return self.proc

    async def start(self, timeout: float = 120.0) -> BotProcess:
        """Start the process and wait until it has identified on the fake's gateway."""
        identified = self.fake.gateway_stats["identifies"]
        await self.spawn()
        deadline = time.monotonic() + timeout
        while self.fake.gateway_stats["identifies"] == identified or not self.fake.connected:
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"bot did not connect (rc={self.process.returncode}):\n{self.log_tail()}")
            await asyncio.sleep(0.1)
        return self

    async def kill(self) -> None:
        """SIGKILL: no clean shutdown, like a crash or a power cut."""
        self.process.kill()
        await self.process.wait()
        self._log.close()

    async def interrupt(self, timeout: float = 30.0, sig: int = signal.SIGINT) -> int:
        """Ctrl-C (SIGINT), or ``sig`` (SIGTERM: ``docker stop``, systemd), and wait for the exit status
        (SIGKILL after ``timeout``)."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await self.wait_exit(timeout)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        """The exit status; a process still running after ``timeout`` is killed (and returns -9)."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            return await self.process.wait()
        finally:
            self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def log_tail(self, n: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

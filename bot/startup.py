"""What both processes, ``morph-bot`` (:mod:`bot.main`) and ``morph-worker`` (:mod:`bot.worker_main`), do to
start and to end: logging, the engine they render with, and exiting. Imports neither discord.py nor the engine,
so the worker stays free of Discord (``tests/test_worker_main.py``)."""
from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

from bot.config import Settings

log = logging.getLogger(__name__)

#: Seconds the process may take to exit after its main() returned before :func:`exit_with` ends it anyway.
EXIT_GRACE_S = 10.0

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
PLAIN = logging.Formatter("[{asctime}] [{levelname:<8}] {name}: {message}", DATE_FORMAT, style="{")
LEVEL_COLOURS = {logging.DEBUG: "\x1b[40;1m", logging.INFO: "\x1b[34;1m", logging.WARNING: "\x1b[33;1m",
                 logging.ERROR: "\x1b[31m", logging.CRITICAL: "\x1b[41m"}


class ColourFormatter(logging.Formatter):
    """discord.py's coloured log lines (grey time, level in its colour, magenta logger, tracebacks in red)."""

    FORMATS = {level: logging.Formatter(f"\x1b[30;1m%(asctime)s\x1b[0m {colour}%(levelname)-8s\x1b[0m "
                                        "\x1b[35m%(name)s\x1b[0m %(message)s", DATE_FORMAT)
               for level, colour in LEVEL_COLOURS.items()}

    def format(self, record: logging.LogRecord) -> str:
        formatter = self.FORMATS.get(record.levelno, self.FORMATS[logging.DEBUG])
        if record.exc_info:
            record.exc_text = f"\x1b[31m{formatter.formatException(record.exc_info)}\x1b[0m"
        try:
            return formatter.format(record)
        finally:
            record.exc_text = None


def supports_colour(stream) -> bool:
    """discord.py's rule: a terminal (on Windows only one known to show colours), or any stream in Docker."""
    tty = hasattr(stream, "isatty") and stream.isatty()
    if "PYCHARM_HOSTED" in os.environ or os.environ.get("TERM_PROGRAM") == "vscode":
        return tty
    if sys.platform == "win32":
        return tty and ("ANSICON" in os.environ or "WT_SESSION" in os.environ)
    cgroup = "/proc/self/cgroup"
    in_docker = os.path.exists("/.dockerenv") or (os.path.isfile(cgroup) and "docker" in open(cgroup).read())
    return tty or in_docker


def setup_logging(level: str = "INFO") -> None:
    """A handler on stderr for the root logger, at ``level``, formatted as discord.py's ``setup_logging`` does
    (coloured where the stream shows colours), without importing discord.py."""
    handler = logging.StreamHandler()
    handler.setFormatter(ColourFormatter() if supports_colour(handler.stream) else PLAIN)
    root = logging.getLogger()
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    root.addHandler(handler)


def log_safety_mode(settings: Settings) -> None:
    """Say at start whether frames are checked (README, "Content safety")."""
    if settings.safety:
        log.info("MORPH_SAFETY=on: every frame is checked by the image safety checker before anything is posted")
    else:
        log.warning("MORPH_SAFETY=off: no image safety check; /morph works only in age-restricted channels")


def default_morpher_factory(settings: Settings) -> Callable[[], object]:
    """What a worker calls, in its loading thread, to make the engine for ``settings``."""
    def make():
        from morph import Morpher  # torch and diffusers: imported in the worker's loading thread, not before

        if settings.compile:
            log.info("MORPH_COMPILE=1: compiling the UNet before the first render (minutes for a real model; "
                     "jobs wait in the queue meanwhile)")
        morpher = Morpher(settings.model, device=settings.device, compile=settings.compile, loras=settings.loras,
                          profile=settings.profile)
        if morpher.compile_error:
            log.warning("MORPH_COMPILE=1 but the UNet could not be compiled, rendering without it: %s",
                        morpher.compile_error)
        return morpher

    return make


def exit_with(code: int) -> NoReturn:
    """Exit the process with ``code``, also when a thread would keep it alive (``morph-bot``, ``morph-worker``).

    - A daemon thread still running (the model load, when the process stops while it loads: see
      ``Worker.preload``) is not waited for; and Python's own exit beside a thread inside torch aborts the
      process ("terminate called without an active exception"), so then the process exits at once.
    - Python waits at exit for every non-daemon thread; one that never ends (a database connection left
      open on an error path) would keep the process alive forever, and a supervisor would never restart
      it. So after :data:`EXIT_GRACE_S` the process exits anyway.
    """
    logging.shutdown()  # flush the log handlers (Python does it at exit, which os._exit skips)
    sys.stdout.flush()
    sys.stderr.flush()
    if any(t.daemon and t.is_alive() for t in threading.enumerate()):
        os._exit(code)
    watchdog = threading.Timer(EXIT_GRACE_S, os._exit, (code,))
    watchdog.daemon = True
    watchdog.start()
    raise SystemExit(code)

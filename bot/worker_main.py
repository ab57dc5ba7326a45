"""``morph-worker``: a render worker without Discord — one per GPU, on any machine that reaches the database.

It claims jobs from ``MORPH_DB`` (a PostgreSQL URL to share the queue across machines; or the SQLite file
of a ``morph-bot`` on the same machine), renders them, stores their files and records progress and
heartbeats. The ``morph-bot`` fronts show the progress and post the results. It needs no ``DISCORD_TOKEN``.
SIGINT and SIGTERM stop it cleanly: the job being rendered goes back to the queue.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

log = logging.getLogger("bot.worker")


def cli() -> None:
    """The ``morph-worker`` command and ``python -m bot.worker_main``."""
    from bot.startup import exit_with

    exit_with(main())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="morph-worker", description="Render morphs from the queue in MORPH_DB "
                                     "(settings from the environment and .env, see .env.example).")
    parser.parse_args(argv)
    from bot.config import ConfigError, Settings
    from bot.startup import setup_logging

    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"morph-worker: configuration error: {err}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    return asyncio.run(run_worker(settings))


async def run_worker(settings, morpher_factory=None, stop: asyncio.Event | None = None) -> int:
    """Render until ``stop`` is set (default: until SIGINT or SIGTERM); return the exit status."""
    from bot.db import DatabaseUnusable, MigrationError
    from bot.startup import default_morpher_factory, log_safety_mode
    from bot.store import Store
    from bot.worker import Worker, recover_own_jobs

    try:
        store = await Store.open(settings.db_path, settings)
    except (DatabaseUnusable, MigrationError) as err:
        print(f"morph-worker: database error: {err}", file=sys.stderr)
        return 2
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await recover_own_jobs(store, settings.worker_id)
        worker = Worker(store, morpher_factory or default_morpher_factory(settings), settings)
        log_safety_mode(settings)
        log.info("morph-worker %s renders from %s (model %s)", worker.run.worker_id, store.db.name, settings.model)
        worker.preload()  # at start-up, in a thread of its own: jobs wait in the queue meanwhile
        await worker.start()
        await stop.wait()
        log.info("stopping: a job being rendered goes back to the queue")
        await worker.stop()
    finally:
        await store.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    cli()

"""The persistent job queue, shared by Discord fronts and render workers through one database.

One :class:`Store` per process. Every change runs in one transaction (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: claims serialised by an advisory lock and ``FOR UPDATE SKIP LOCKED``), so checks and writes
(limits, claims) are atomic however many processes share the database. Times are Unix seconds from
``Store.clock``: the database's clock (:class:`DatabaseClock` for PostgreSQL; a SQLite file's is the clock of
the machine it is on), so processes on machines whose clocks disagree compare heartbeats and leases alike;
injectable for tests, and most methods also take ``now=``.
A database that cannot be reached raises ``bot.db.DatabaseUnavailable`` from any method.

Job life: ``queued → running → rendered → delivered``; ``failed`` and ``cancelled`` are final
(:class:`bot.jobs.JobState`). A rendered job is never rendered again; a delivered one is never delivered
again. Workers write a job's progress and heartbeat here; fronts read them (see ``bot.delivery``).
Notifications (``bot.db``) wake workers when a job becomes claimable and fronts when a job changes.

The Store is one class made of one part per concern, each in its own module:

- :mod:`bot.store.queue`: submitting (every limit), places in the queue, cancelling;
- :mod:`bot.store.claims`: the workers' side: fair claims, heartbeats, recovery, the render's outcome;
- :mod:`bot.store.posting`: the fronts' side: posting rendered jobs once, showing failures once;
- :mod:`bot.store.results`: picks, deleting a result, the retention purge;
- :mod:`bot.store.uploads`: the pictures of ``/morph-images`` jobs, stored with the job;
- :mod:`bot.store.safety`: the image check's outcome, the ``withheld`` state, reports;
- :mod:`bot.store.guilds`: per-guild limits (:class:`Limits`), pause, bans, the audit log, stats;
- :mod:`bot.store.base`: what they share (database, settings, clock, reading a job).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bot.config import Settings
from bot.db import open_database
from bot.store.base import DatabaseClock
from bot.store.claims import LOST, MAX_ATTEMPTS, WorkerClaims, WorkerRun
from bot.store.guilds import LIMIT_KEYS, GuildRules, Limits
from bot.store.posting import DELIVERY_LEASE_S, ResultPosting
from bot.store.queue import INTERACTION_TTL_S, JobQueue
from bot.store.results import INTERACTION_MEMORY_S, Results
from bot.store.safety import ContentSafety, Report
from bot.store.uploads import PictureUploads

__all__ = ["DELIVERY_LEASE_S", "DatabaseClock", "INTERACTION_MEMORY_S", "INTERACTION_TTL_S", "LIMIT_KEYS", "LOST",
           "MAX_ATTEMPTS", "Limits", "Report", "Store", "WorkerRun"]


class Store(JobQueue, WorkerClaims, ResultPosting, Results, GuildRules, PictureUploads, ContentSafety):
    """Create with ``await Store.open(MORPH_DB, settings)``: a SQLite path or a PostgreSQL URL."""

    @classmethod
    async def open(cls, target: str | Path, settings: Settings, *, migrations_dir: str | Path | None = None,
                   clock: Callable[[], float] | None = None) -> Store:
        """Connect and apply pending migrations (``bot.db.DatabaseUnusable`` / ``MigrationError`` say why not).

        The clock (``now``) is the database's by default: PostgreSQL's (:class:`DatabaseClock`, measured here);
        for SQLite, this machine's ``time.time`` (every process of a SQLite file runs on the machine that holds
        it, whose clock ``julianday('now')`` reads too: no round trips needed). An injected ``clock`` (tests) is
        used as it is, unless it is a :class:`DatabaseClock` too."""
        db = await open_database(target, migrations_dir=migrations_dir)
        if clock is None:
            clock = DatabaseClock() if db.dialect == "postgres" else time.time
        store = cls(db, settings, clock=clock)
        if isinstance(store.clock, DatabaseClock):
            try:
                await store.clock.sync(db)
            except BaseException:
                await db.close()
                raise
        return store

    async def close(self) -> None:
        await self.db.close()

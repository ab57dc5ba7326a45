"""What both databases offer the Store (:class:`Database`, :class:`Tx`), their errors and migration files."""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

log = logging.getLogger("bot.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"
#: Notification channels. QUEUE: a job may have become claimable (workers wake). JOBS: a job changed in a
#: way a Discord front shows (claimed, progress, rendered, failed, back in the queue).
QUEUE_CHANNEL, JOBS_CHANNEL = "morph_queue", "morph_jobs"

_NAME = re.compile(r"(\d{4})_([A-Za-z0-9_]+)\.sql")


class MigrationError(RuntimeError):
    """The database schema cannot be brought to this code's version; the message says why."""


class DatabaseUnusable(RuntimeError):
    """The database cannot be opened, reached or read; the message names it and what to do."""


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached right now: down, restarting, a dropped connection, locked or too slow.
    The operation may or may not have happened (a dropped COMMIT); callers retry it (idempotent operations),
    or tell the user to try again in a moment. Raised by both backends in place of their drivers' errors."""


def log_failure(logger: logging.Logger, what: str, err: BaseException) -> None:
    """Log an error of a background loop with its traceback, unless it is :class:`DatabaseUnavailable`:
    the outage is logged once by :class:`Availability`, not at every turn of every loop."""
    if isinstance(err, DatabaseUnavailable):
        logger.debug("%s: %s", what, err)
    else:
        logger.error("%s", what, exc_info=err)


class Availability:
    """Whether the database answers, for the log: one warning when it goes away, one line when it is back
    (however many operations fail meanwhile), instead of a traceback for each."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down_since: float | None = None  # monotonic
        #: when it last came back after an outage this process saw (monotonic); None: never away
        self.back_at: float | None = None

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, err: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("the database %s is unavailable (%s: %s); interactions answer \"unavailable for a "
                        "moment\" and work waits until it is back", self.name, type(err).__name__, err)

    def answered(self) -> None:
        if self.down_since is not None:
            self.back_at = time.monotonic()
            log.warning("the database %s is back after %.1f s", self.name, self.back_at - self.down_since)
            self.down_since = None

    def up_for(self) -> float | None:
        """Seconds since it came back after the last outage this process saw; None if it never went away."""
        return None if self.back_at is None or self.down_since is not None else time.monotonic() - self.back_at


class Tx:
    """One transaction. Statements use ``$1, $2, …`` placeholders, which both databases run as written;
    rows come back as dicts."""

    async def fetch(self, sql: str, *params: Any) -> list[dict]:
        raise NotImplementedError

    async def execute(self, sql: str, *params: Any) -> int:
        """Run one statement; return how many rows it changed."""
        raise NotImplementedError

    def notify(self, channel: str) -> None:
        """Tell every subscriber of ``channel`` (in every process) once this transaction commits."""
        raise NotImplementedError

    async def serialize(self, what: str) -> None:
        """Make the transactions that check-then-write ``what`` ("claims", "queue", "picks") take turns
        (PostgreSQL: an advisory lock held until commit), so a check (a limit, the next job) sees every
        earlier write. SQLite's ``BEGIN IMMEDIATE`` already serialises every writing transaction."""

    async def fetchrow(self, sql: str, *params: Any) -> dict | None:
        rows = await self.fetch(sql, *params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *params: Any) -> Any:
        row = await self.fetchrow(sql, *params)
        return None if row is None else next(iter(row.values()))


class Database:
    """A connected, migrated database. Subclasses: ``bot.db.sqlite.SqliteDatabase``,
    ``bot.db.postgres.PostgresDatabase``."""

    dialect: str
    #: appended to the claim's ``SELECT … LIMIT 1``: row locking where the database has it
    skip_locked: str = ""
    #: the database for log lines and messages (a path, or a URL without its password)
    name: str = ""
    #: set by the subclasses: whether it answers (see :class:`Availability`)
    availability: Availability

    async def now(self) -> float:
        """The database's clock, in Unix seconds (every process compares times with this one clock)."""
        raise NotImplementedError

    async def started_at(self) -> float | None:
        """When the database server last started, in Unix seconds of its clock (PostgreSQL); None where there
        is no server (SQLite). Nobody could write to it before then, heartbeats included."""
        return None

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """``async with db.transaction() as tx``: commit at the end, roll back on any exception."""
        raise NotImplementedError

    async def fetch(self, sql: str, *params: Any) -> list[dict]:
        """A read outside any transaction."""
        raise NotImplementedError

    async def fetchval(self, sql: str, *params: Any) -> Any:
        rows = await self.fetch(sql, *params)
        return next(iter(rows[0].values())) if rows else None

    async def execute(self, sql: str, *params: Any) -> int:
        """One statement in its own transaction; return how many rows it changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, *params)

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on this event loop) whenever a transaction notifies ``channel``."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


def migration_files(migrations_dir: str | Path) -> list[tuple[int, str, Path]]:
    """``(version, name, path)`` sorted by version; refuses badly named or duplicate files."""
    found: dict[int, tuple[int, str, Path]] = {}
    for p in sorted(Path(migrations_dir).glob("*.sql")):
        m = _NAME.fullmatch(p.name)
        if not m:
            raise MigrationError(f"Migration file {p.name!r} is not named NNNN_name.sql.")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"Two migrations have number {version:04d}: {found[version][2].name}, {p.name}.")
        found[version] = (version, m.group(2), p)
    return [found[v] for v in sorted(found)]


def newer_than_code(current: int, latest: int, what: str) -> MigrationError:
    return MigrationError(
        f"The database is at schema version {current}, but this code only knows migrations up to {latest}: it "
        f"was written by a newer morph-bot. Upgrade the code, or point MORPH_DB at {what}.")

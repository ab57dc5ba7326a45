"""SQLite through aiosqlite: one connection per process, every write in ``BEGIN IMMEDIATE``.

Several processes may share the file (claims stay atomic: SQLite lets one writer at a time), but they
cannot notify each other: a notification reaches only this process's subscribers, and other processes
notice changes by polling.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite

from bot.db.base import (
    Availability,
    Database,
    DatabaseUnavailable,
    DatabaseUnusable,
    MigrationError,
    Tx,
    migration_files,
    newer_than_code,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
#: ``UPDATE … RETURNING`` (atomic claim) needs SQLite 3.35.
MIN_SQLITE = (3, 35, 0)


def _named(params: tuple[Any, ...]) -> dict[str, Any]:
    """The parameters of a statement written with ``$1, $2, …`` (see ``bot.db``): SQLite runs those as
    named parameters "1", "2", …, so the same SQL text runs on both databases, unchanged."""
    return {str(n): value for n, value in enumerate(params, 1)}


@contextlib.contextmanager
def _unavailable_when_locked(availability: Availability):
    """Within the block, "database is locked" (another process held the write lock past the busy timeout)
    becomes :class:`DatabaseUnavailable`, logged once."""
    try:
        yield
    except sqlite3.OperationalError as e:
        if not _is_busy(e):
            raise
        availability.failed(e)
        raise DatabaseUnavailable(f"the database {availability.name} is locked by another process") from e


class SqliteTx(Tx):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.notifications: set[str] = set()

    async def fetch(self, sql: str, *params: Any) -> list[dict]:
        return [dict(r) for r in await self.conn.execute_fetchall(sql, _named(params))]

    async def execute(self, sql: str, *params: Any) -> int:
        return (await self.conn.execute(sql, _named(params))).rowcount  # one trip to the connection's thread

    def notify(self, channel: str) -> None:
        self.notifications.add(channel)


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.name = str(path)
        self.availability = Availability(self.name)
        # One connection is shared by all coroutines of this process: serialise our transactions on it
        # (other processes are serialised by SQLite's own write lock).
        self._lock = asyncio.Lock()
        self._subscribers: dict[str, list[Callable[[], None]]] = {}

    @classmethod
    async def open(cls, target, migrations_dir: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> SqliteDatabase:
        path = Path(target)
        conn = await connect(path, busy_timeout_ms=busy_timeout_ms)
        try:
            await migrate(conn, migrations_dir)
        except BaseException as e:
            await conn.close()
            if isinstance(e, sqlite3.Error):
                raise unusable(path, e, busy_timeout_ms) from e
            raise
        return cls(conn, path)

    @contextlib.asynccontextmanager
    async def transaction(self):
        async with self._lock:
            tx = SqliteTx(self.conn)
            try:
                with _unavailable_when_locked(self.availability):
                    await self.conn.execute("BEGIN IMMEDIATE")
                    yield tx
                    await self.conn.execute("COMMIT")
            except BaseException:
                # Also when cancelled while BEGIN (or COMMIT) was still on its way: the connection's thread runs
                # them in order, so this ROLLBACK comes after them and never leaves a transaction open.
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.shield(self.conn.execute("ROLLBACK"))
                raise
        self.availability.answered()
        for channel in tx.notifications:
            for callback in self._subscribers.get(channel, ()):
                callback()

    async def fetch(self, sql: str, *params: Any) -> list[dict]:
        async with self._lock:
            with _unavailable_when_locked(self.availability):
                rows = [dict(r) for r in await self.conn.execute_fetchall(sql, _named(params))]
        self.availability.answered()
        return rows

    async def now(self) -> float:
        return float(await self.fetchval("SELECT (julianday('now') - 2440587.5) * 86400.0"))

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        self._subscribers.setdefault(channel, []).append(callback)

    async def close(self) -> None:
        await self.conn.close()


async def connect(path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> aiosqlite.Connection:
    """Open (creating the parent folder) with WAL, a busy timeout and foreign keys.

    The connection is in autocommit mode (``isolation_level=None``): transactions are opened explicitly
    (``BEGIN IMMEDIATE``), which is what makes the multi-process claim safe.

    A file that cannot be used raises :class:`DatabaseUnusable` (and leaves no connection thread behind,
    which would keep the process alive). A lock held by another process (e.g. one starting at the same
    moment) is waited out for up to ``busy_timeout_ms``.
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise MigrationError(f"SQLite {sqlite3.sqlite_version} is too old; morph-bot needs 3.35 or newer.")
    path = Path(path)
    if str(path) != ":memory:":
        path = path.resolve()  # messages name the file wherever the bot was started from
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DatabaseUnusable(f"Cannot create the folder of the database {path} ({e}). Point MORPH_DB at "
                                   "a file in a folder this user may write to.") from e
    try:
        # Opening first without aiosqlite: its thread, stopped when its connect fails, would then report
        # back to an event loop that may be gone. (Opening takes no lock and reads nothing.)
        sqlite3.connect(str(path)).close()
    except sqlite3.Error as e:
        raise unusable(path, e, busy_timeout_ms) from e
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await _journal_mode_wal(conn, busy_timeout_ms / 1000)
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        async with conn.execute("SELECT COUNT(*) FROM sqlite_master") as cur:  # a damaged schema fails here
            await cur.fetchone()
    except BaseException as e:
        await conn.close()
        if isinstance(e, sqlite3.Error):
            raise unusable(path, e, busy_timeout_ms) from e
        raise
    return conn


async def _journal_mode_wal(conn: aiosqlite.Connection, timeout_s: float) -> None:
    """``PRAGMA journal_mode = WAL``, retried while another connection holds a lock. SQLite answers this
    pragma "database is locked" at once, without its busy handler, when another connection is writing to a
    file still in rollback mode: two processes creating a new database at the same moment."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            async with conn.execute("PRAGMA journal_mode = WAL") as cur:
                await cur.fetchone()
            return
        except sqlite3.OperationalError as e:
            if not _is_busy(e) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(0.05)


def _is_busy(e: sqlite3.Error) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def unusable(path: Path, e: sqlite3.Error, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> DatabaseUnusable:
    """A :class:`DatabaseUnusable` for ``e`` naming ``path`` and what to do about it."""
    text = str(e).lower()
    if _is_busy(e):
        what = (f"stayed locked by another process for longer than {busy_timeout_ms / 1000:g} s. Another program "
                "holds a write lock on it (a backup, an open sqlite3 shell?): close it and start again")
    elif "readonly" in text or "read-only" in text:
        what = (f"is read-only for this user. Give it write access to the file and its folder (SQLite writes "
                f"{path.name}-wal and {path.name}-shm beside it)")
    elif "unable to open" in text or isinstance(e, sqlite3.OperationalError):
        what = "cannot be opened. Check that MORPH_DB names a file (not a folder) that this user may read and write"
    else:  # "file is not a database", "database disk image is malformed"
        what = ("is damaged or not a SQLite database. Stop every bot using it; restore it from a backup, or move "
                "it aside (or point MORPH_DB at a new file) to start with an empty queue and default settings")
    return DatabaseUnusable(f"The database {path} {what} ({e}).")


async def schema_version(conn: aiosqlite.Connection) -> int:
    """The highest applied migration number (0 for a fresh database)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                       "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cur:
        row = await cur.fetchone()
    return row[0] if row else 0


async def migrate(conn: aiosqlite.Connection, migrations_dir: str | Path) -> list[int]:
    """Apply every migration newer than the database, in order; return the versions applied.

    Each file runs in its own ``BEGIN IMMEDIATE`` transaction together with the row that records it in
    ``schema_version``, so a failing migration leaves nothing behind and two processes starting at once
    cannot apply the same file twice. Re-running is a no-op. A database whose version is newer than the
    newest file raises :class:`MigrationError` (this code would misread it), as does a failing file (named).
    """
    files = migration_files(migrations_dir)
    latest = files[-1][0] if files else 0
    current = await schema_version(conn)
    if current > latest:
        raise newer_than_code(current, latest, "another file")
    applied = []
    for version, name, path in files:
        if version <= current:
            continue
        sql = path.read_text(encoding="utf-8")
        script = (f"BEGIN IMMEDIATE;\n{sql}\n;\n"
                  f"INSERT INTO schema_version (version, name, applied_at) "
                  f"VALUES ({version}, '{name}', {time.time()!r});\nCOMMIT;")
        try:
            # executescript takes no parameters; version is an int and name matched [A-Za-z0-9_]+.
            await conn.executescript(script)
        except sqlite3.Error as e:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            async with conn.execute("SELECT 1 FROM schema_version WHERE version = ?", (version,)) as cur:
                if await cur.fetchone() is not None:
                    continue  # another process applied it at the same moment
            if _is_busy(e):
                raise  # not the file's fault: reported as a locked database
            raise MigrationError(f"Migration {path.name} failed and was rolled back: {e}") from e
        log.info("applied migration %s", path.name)
        applied.append(version)
    return applied

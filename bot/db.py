"""SQLite connection and numbered migrations.

Migrations are files ``NNNN_name.sql`` in ``migrations/``. Each one runs in its own ``BEGIN IMMEDIATE``
transaction together with the row that records it in ``schema_version``, so a failing migration leaves
nothing behind and two processes starting at once cannot apply the same file twice.
"""
from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
BUSY_TIMEOUT_MS = 10_000
#: ``UPDATE … RETURNING`` (atomic claim) needs SQLite 3.35.
MIN_SQLITE = (3, 35, 0)

_NAME = re.compile(r"(\d{4})_([A-Za-z0-9_]+)\.sql")


class MigrationError(RuntimeError):
    """The database schema cannot be brought to this code's version; the message says why."""


class DatabaseUnusable(RuntimeError):
    """The database file cannot be opened or read (damaged, not a database, no access, locked for longer
    than the busy timeout); the message names the file and what to do."""


async def connect(path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> aiosqlite.Connection:
    """Open (creating the parent folder) with WAL, a busy timeout and foreign keys.

    The connection is in autocommit mode (``isolation_level=None``): callers open transactions
    explicitly (``BEGIN IMMEDIATE``), which is what makes the multi-process claim safe.

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


def migration_files(migrations_dir: str | Path = MIGRATIONS_DIR) -> list[tuple[int, str, Path]]:
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


async def schema_version(conn: aiosqlite.Connection) -> int:
    """The highest applied migration number (0 for a fresh database)."""
    await _ensure_version_table(conn)
    async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cur:
        return (await cur.fetchone())[0]


async def migrate(conn: aiosqlite.Connection, migrations_dir: str | Path = MIGRATIONS_DIR) -> list[int]:
    """Apply every migration newer than the database, in order; return the versions applied.

    Re-running is a no-op. A database whose version is newer than the newest file raises
    :class:`MigrationError` (this code would misread it). A failing file is rolled back entirely and
    raises :class:`MigrationError` naming it.
    """
    files = migration_files(migrations_dir)
    latest = files[-1][0] if files else 0
    current = await schema_version(conn)
    if current > latest:
        raise MigrationError(
            f"The database is at schema version {current}, but this code only knows migrations up to "
            f"{latest}: it was written by a newer morph-bot. Upgrade the code, or point MORPH_DB at "
            "another file.")
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
            raise MigrationError(f"Migration {path.name} failed and was rolled back: {e}") from e
        log.info("applied migration %s", path.name)
        applied.append(version)
    return applied


async def _ensure_version_table(conn: aiosqlite.Connection) -> None:
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                       "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")

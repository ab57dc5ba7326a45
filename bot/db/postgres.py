"""PostgreSQL through asyncpg: a connection pool, transactions in READ COMMITTED, LISTEN/NOTIFY.

Claims take a transaction-level advisory lock before picking a row (``FOR UPDATE … SKIP LOCKED``), so
claims of all workers take turns: no two workers get one job, and the round-robin across guilds sees
every earlier claim. Enqueues and picks, which check limits before writing, take turns the same way.
Notifications are ``NOTIFY`` inside the transaction (sent at commit) and reach every process that
subscribed, on any machine.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from pathlib import Path
from typing import Any
from collections.abc import Callable

import asyncpg

from bot.db.base import Database, DatabaseUnusable, MigrationError, Tx, migration_files, newer_than_code

log = logging.getLogger(__name__)

#: Advisory lock keys (bigints this application alone uses).
MIGRATE_LOCK = 0x6D6F7270_68000001
SERIALIZE_LOCKS = {"claims": 0x6D6F7270_68000002, "queue": 0x6D6F7270_68000003, "picks": 0x6D6F7270_68000004}
CONNECT_TIMEOUT_S = 10.0
LISTEN_RETRY_S = 5.0


def _rowcount(status: str) -> int:
    """``"UPDATE 3"`` / ``"INSERT 0 1"`` / ``"DELETE 0"`` → 3 / 1 / 0."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class PgTx(Tx):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.notifications: set[str] = set()

    async def fetch(self, sql: str, *params: Any) -> list[dict]:
        return [dict(r) for r in await self.conn.fetch(sql, *params)]

    async def execute(self, sql: str, *params: Any) -> int:
        return _rowcount(await self.conn.execute(sql, *params))

    def notify(self, channel: str) -> None:
        self.notifications.add(channel)

    async def serialize(self, what: str) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock($1)", SERIALIZE_LOCKS[what])


class PostgresDatabase(Database):
    dialect = "postgres"
    skip_locked = " FOR UPDATE OF j SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.name = safe_url(url)
        self._subscribers: dict[str, list[Callable[[], None]]] = {}
        self._listener: asyncpg.Connection | None = None
        self._listen_task: asyncio.Task | None = None

    @classmethod
    async def open(cls, target, migrations_dir: Path) -> PostgresDatabase:
        url = str(target)
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=10, timeout=CONNECT_TIMEOUT_S,
                                             command_timeout=60)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise DatabaseUnusable(f"Cannot connect to the PostgreSQL database {safe_url(url)} ({e}). Check that "
                                   "the server runs and that MORPH_DB names it, the user and the database.") from e
        try:
            async with pool.acquire() as conn:
                await migrate(conn, migrations_dir)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url)

    @contextlib.asynccontextmanager
    async def transaction(self):
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                tx = PgTx(conn)
                yield tx
                for channel in tx.notifications:  # NOTIFY inside the transaction: sent at commit
                    await conn.execute(f"NOTIFY {channel}")

    async def fetch(self, sql: str, *params: Any) -> list[dict]:
        return [dict(r) for r in await self.pool.fetch(sql, *params)]

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        first = channel not in self._subscribers
        self._subscribers.setdefault(channel, []).append(callback)
        if self._listen_task is None:
            self._listen_task = asyncio.get_running_loop().create_task(self._listen(), name="morph-db-listen")
        elif first and self._listener is not None:
            asyncio.get_running_loop().create_task(self._listener.add_listener(channel, self._dispatch))

    def _dispatch(self, _conn, _pid, channel: str, _payload: str) -> None:
        for callback in self._subscribers.get(channel, ()):
            callback()

    async def _listen(self) -> None:
        """One connection that LISTENs, reconnected when it drops (subscribers are woken then too: they
        may have missed a notification, and look at the database themselves)."""
        while True:
            try:
                self._listener = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT_S)
                lost = asyncio.Event()
                self._listener.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in list(self._subscribers):
                    await self._listener.add_listener(channel, self._dispatch)
                for channel in list(self._subscribers):
                    self._dispatch(None, None, channel, "")
                await lost.wait()
                log.warning("the LISTEN connection to %s closed; reconnecting", self.name)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - retried: notifications only speed things up
                log.warning("cannot LISTEN on %s (%s); retrying in %.0f s", self.name, e, LISTEN_RETRY_S)
            self._listener = None
            await asyncio.sleep(LISTEN_RETRY_S)

    async def close(self) -> None:
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
            self._listen_task = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        await self.pool.close()


async def migrate(conn: asyncpg.Connection, migrations_dir: str | Path) -> list[int]:
    """Apply every migration newer than the database, each in its own transaction with the row that
    records it, under an advisory lock (several processes starting at once apply each file once).
    A database newer than this code, or a failing file (rolled back), raises :class:`MigrationError`."""
    files = migration_files(migrations_dir)
    latest = files[-1][0] if files else 0
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATE_LOCK)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                           "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        if current > latest:
            raise newer_than_code(current, latest, "another database")
        applied = []
        for version, name, path in files:
            if version <= current:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(path.read_text(encoding="utf-8"))
                    await conn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                                       version, name, time.time())
            except asyncpg.PostgresError as e:
                raise MigrationError(f"Migration {path.name} failed and was rolled back: {e}") from e
            log.info("applied migration %s", path.name)
            applied.append(version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK)

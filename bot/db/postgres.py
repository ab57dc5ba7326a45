"""PostgreSQL through asyncpg: a connection pool, transactions in READ COMMITTED, LISTEN/NOTIFY.

Claims take a transaction-level advisory lock before picking a row (``FOR UPDATE … SKIP LOCKED``), so
claims of all workers take turns: no two workers get one job, and the round-robin across guilds sees
every earlier claim. Enqueues and picks, which check limits before writing, take turns the same way.
Notifications are ``NOTIFY`` inside the transaction (sent at commit) and reach every process that
subscribed, on any machine.

Faults: every session carries :data:`SESSION_SETTINGS` (a process that freezes or loses its network inside a
transaction loses its session, and the locks it held, within seconds; nothing waits on a lock or a
statement for long). A connection that PostgreSQL closed (a restart, ``pg_terminate_backend``) is noticed
when a transaction begins on it, and the transaction begins again on a fresh one. Every other
connection-level error (server down, connection lost mid-transaction, a timeout) raises
:class:`~bot.db.base.DatabaseUnavailable`; :class:`~bot.db.base.Availability` logs the outage once.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

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

#: Advisory lock keys (bigints this application alone uses).
MIGRATE_LOCK = 0x6D6F7270_68000001
SERIALIZE_LOCKS = {"claims": 0x6D6F7270_68000002, "queue": 0x6D6F7270_68000003, "picks": 0x6D6F7270_68000004,
                   "reports": 0x6D6F7270_68000005}
CONNECT_TIMEOUT_S = 10.0
LISTEN_RETRY_S = 5.0
#: Client-side bound on one statement (the server's ``statement_timeout`` normally ends it first).
COMMAND_TIMEOUT_S = 30.0
#: Every session's settings (the pool's and the LISTEN connection's), in the startup packet. A session idle
#: inside a transaction for 10 s (its process froze, or lost the network) is ended by the server, which
#: releases its locks (the claims' advisory lock among them); a statement waits at most 10 s for a lock and
#: runs at most 30 s; the server probes an idle connection after 10 s and drops it after three unanswered
#: probes 5 s apart (a client machine that vanished).
SESSION_SETTINGS = {
    "idle_in_transaction_session_timeout": "10000", "lock_timeout": "10000", "statement_timeout": "30000",
    "tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3",
}


def is_transient(err: BaseException) -> bool:
    """A connection-level error (the server, the network, a timeout): not this operation's fault."""
    if isinstance(err, asyncpg.InterfaceError):
        return "closed" in str(err)  # "connection is closed"; other interface errors are our bugs
    if isinstance(err, asyncpg.exceptions.InternalClientError):  # a connection reset while the server shuts it
        return "another operation" in str(err)
    return isinstance(err, (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
                            asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.LockNotAvailableError,
                            asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
                            asyncpg.exceptions.TooManyConnectionsError))  # a full disk is StorageFull


def _rowcount(status: str) -> int:
    """``"UPDATE 3"`` / ``"INSERT 0 1"`` / ``"DELETE 0"`` → 3 / 1 / 0."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def safe_url(url: str) -> str:
    """The URL without its password (``user:password@`` or ``?password=``), for messages and logs."""
    from bot.config import mask_url

    return mask_url(url)


class PgTx(Tx):
    def __init__(self, conn: asyncpg.Connection, db: PostgresDatabase) -> None:
        self.conn = conn
        self.db = db
        self.notifications: set[str] = set()

    async def fetch(self, sql: str, *params: Any) -> list[dict]:
        async with self.db.unavailable_on_connection_errors():
            return [dict(r) for r in await self.conn.fetch(sql, *params)]

    async def execute(self, sql: str, *params: Any) -> int:
        async with self.db.unavailable_on_connection_errors():
            return _rowcount(await self.conn.execute(sql, *params))

    def notify(self, channel: str) -> None:
        self.notifications.add(channel)

    async def serialize(self, what: str) -> None:
        async with self.db.unavailable_on_connection_errors():
            await self.conn.execute("SELECT pg_advisory_xact_lock($1)", SERIALIZE_LOCKS[what])


class PostgresDatabase(Database):
    dialect = "postgres"
    skip_locked = " FOR UPDATE OF j SKIP LOCKED"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.name = safe_url(url)
        self.availability = Availability(self.name)
        self._subscribers: dict[str, list[Callable[[], None]]] = {}
        self._listener: asyncpg.Connection | None = None
        self._listen_task: asyncio.Task | None = None
        self._listen_lock = asyncio.Lock()

    @classmethod
    async def open(cls, target, migrations_dir: Path) -> PostgresDatabase:
        url = str(target)
        from bot.config import tls_warning

        if (warning := tls_warning(url)) is not None:
            log.warning("%s", warning)
        from bot.config import mask_secrets

        # no connection floor (min_size=0): during an outage asyncpg would try to restore it in a loop, with a
        # traceback in the log each time; the first acquire below connects
        pool = await asyncpg.create_pool(url, min_size=0, max_size=10, timeout=CONNECT_TIMEOUT_S,
                                         command_timeout=COMMAND_TIMEOUT_S, server_settings=SESSION_SETTINGS)
        try:
            try:
                conn = await pool.acquire()
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as e:
                raise DatabaseUnusable(f"Cannot connect to the PostgreSQL database {safe_url(url)} "
                                       f"({mask_secrets(str(e), url)}). Check that the server runs and that MORPH_DB "
                                       "names it, the user and the database.") from e
            try:
                await migrate(conn, migrations_dir)
            finally:
                await pool.release(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url)

    @contextlib.asynccontextmanager
    async def unavailable_on_connection_errors(self):
        """Within the block, a connection-level error becomes :class:`DatabaseUnavailable` (logged once)."""
        try:
            yield
        except DatabaseUnavailable:
            raise
        except Exception as e:
            if not is_transient(e):
                raise
            self.availability.failed(e)
            await self.pool.expire_connections()  # the others may be dead too: replaced at their next acquire
            raise DatabaseUnavailable(f"the database {self.name} is unavailable ({type(e).__name__})") from e

    async def _begin(self) -> tuple[asyncpg.Connection, Any]:
        """A pooled connection with a transaction begun on it. A connection the server closed meanwhile
        fails at BEGIN, before anything happened: the transaction begins again, once, on a fresh one."""
        for attempt in (1, 2):
            async with self.unavailable_on_connection_errors():
                conn = await self.pool.acquire()
            transaction = conn.transaction()
            try:
                await transaction.start()
                return conn, transaction
            except Exception as e:
                with contextlib.suppress(Exception):
                    await self.pool.release(conn)
                if attempt == 2 or not is_transient(e):
                    async with self.unavailable_on_connection_errors():
                        raise
                await self.pool.expire_connections()
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def transaction(self):
        conn, transaction = await self._begin()
        try:
            tx = PgTx(conn, self)
            try:
                yield tx
                async with self.unavailable_on_connection_errors():
                    for channel in tx.notifications:  # NOTIFY inside the transaction: sent at commit
                        await conn.execute(f"NOTIFY {channel}")
                    await transaction.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
        finally:
            with contextlib.suppress(Exception):
                await self.pool.release(conn)
        self.availability.answered()

    async def fetch(self, sql: str, *params: Any) -> list[dict]:
        """A read: retried once on a fresh connection after a connection-level error (nothing was written)."""
        for attempt in (1, 2):
            try:
                rows = [dict(r) for r in await self.pool.fetch(sql, *params)]
            except Exception as e:
                if attempt == 1 and is_transient(e):
                    await self.pool.expire_connections()
                    continue
                async with self.unavailable_on_connection_errors():
                    raise
            self.availability.answered()
            return rows
        raise AssertionError("unreachable")

    async def now(self) -> float:
        return float(await self.fetchval("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8"))

    def subscribe(self, channel: str, callback: Callable[[], None]) -> None:
        first = channel not in self._subscribers
        self._subscribers.setdefault(channel, []).append(callback)
        if self._listen_task is None:
            self._listen_task = asyncio.get_running_loop().create_task(self._listen(), name="morph-db-listen")
        elif first and self._listener is not None:
            asyncio.get_running_loop().create_task(self._add_listener(self._listener, channel))

    async def _add_listener(self, listener: asyncpg.Connection, channel: str) -> None:
        """LISTEN on ``channel`` too; one at a time (the connection runs one command at a time). A failure
        is left to the reconnect of :meth:`_listen`, which listens on every channel again."""
        async with self._listen_lock:
            with contextlib.suppress(Exception):
                await listener.add_listener(channel, self._dispatch)

    def _dispatch(self, _conn, _pid, channel: str, _payload: str) -> None:
        for callback in self._subscribers.get(channel, ()):
            callback()

    async def _listen(self) -> None:
        """One connection that LISTENs, reconnected when it drops (subscribers are woken then too: they
        may have missed a notification, and look at the database themselves)."""
        while True:
            try:
                self._listener = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT_S,
                                                       server_settings=SESSION_SETTINGS)
                lost = asyncio.Event()
                self._listener.add_termination_listener(lambda _conn, lost=lost: lost.set())
                async with self._listen_lock:
                    for channel in list(self._subscribers):
                        await self._listener.add_listener(channel, self._dispatch)
                for channel in list(self._subscribers):
                    self._dispatch(None, None, channel, "")
                await lost.wait()
                # not a warning: a drop is the start of an outage, which Availability logs once, or a passing
                # blip that the reconnect below mends (and logs if it cannot)
                log.debug("the LISTEN connection to %s closed; reconnecting", self.name)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - retried: notifications only speed things up
                if is_transient(e):  # the outage itself is logged once, by Availability
                    log.debug("cannot LISTEN on %s (%s); retrying in %.0f s", self.name, e, LISTEN_RETRY_S)
                else:
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
    # a migration may take long, and waits for another process's: no timeouts (reset when the pool takes it back)
    await conn.execute("SET statement_timeout = 0; SET lock_timeout = 0")
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

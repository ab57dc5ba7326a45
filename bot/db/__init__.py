"""The job database: one SQLite file (the default) or a PostgreSQL server (``MORPH_DB=postgresql://…``).

:func:`open_database` connects and applies the numbered migrations of its dialect (``migrations/sqlite/``,
``migrations/postgres/``). :class:`Database` is what the Store works with: transactions, reads, and
notifications to other processes. Everything that differs between the two databases lives in this
package: connecting, binding parameters (the Store writes ``$1, $2, …``, which both run as written),
migrations, how claims lock rows, and LISTEN/NOTIFY (PostgreSQL) versus waking only this process (SQLite,
where other processes poll).
"""
from __future__ import annotations

from pathlib import Path

from bot.config import is_postgres
from bot.db.base import (
    JOBS_CHANNEL,
    MIGRATIONS_DIR,
    QUEUE_CHANNEL,
    Database,
    DatabaseUnavailable,
    DatabaseUnusable,
    MigrationError,
    Tx,
    log_failure,
    migration_files,
)

__all__ = ["JOBS_CHANNEL", "MIGRATIONS_DIR", "QUEUE_CHANNEL", "Database", "DatabaseUnavailable", "DatabaseUnusable",
           "MigrationError",
           "Tx", "is_postgres", "log_failure", "migration_files", "open_database"]


async def open_database(target: str | Path, *, migrations_dir: str | Path | None = None) -> Database:
    """Connect to ``target`` (a SQLite path or a PostgreSQL URL) and bring its schema up to date.

    Raises :class:`DatabaseUnusable` (cannot connect or read; the message names the database and what to
    do) or :class:`MigrationError` (e.g. a database written by a newer morph-bot).
    """
    cls: type[Database]
    if is_postgres(target):
        from bot.db.postgres import PostgresDatabase
        cls = PostgresDatabase
    else:
        from bot.db.sqlite import SqliteDatabase
        cls = SqliteDatabase
    folder = Path(migrations_dir) if migrations_dir is not None else MIGRATIONS_DIR / cls.dialect
    return await cls.open(target, folder)

import shutil
import sqlite3

import pytest

from bot import db
from bot.db import MigrationError, connect, migrate, schema_version


async def tables(conn) -> set[str]:
    async with conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cur:
        return {r[0] for r in await cur.fetchall()}


async def test_fresh_database_gets_schema_wal_and_pragmas(tmp_path):
    conn = await connect(tmp_path / "sub" / "m.sqlite3")
    try:
        applied = await migrate(conn)
        assert applied == [v for v, _, _ in db.migration_files()] and applied[0] == 1
        assert {"jobs", "guild_settings", "bans", "picks", "audit_log", "schema_version"} <= await tables(conn)
        assert await schema_version(conn) == applied[-1]
        async with conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        async with conn.execute("PRAGMA busy_timeout") as cur:
            assert (await cur.fetchone())[0] == db.BUSY_TIMEOUT_MS
        async with conn.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1
    finally:
        await conn.close()


async def test_rerun_is_a_noop_and_keeps_data(tmp_path):
    path = tmp_path / "m.sqlite3"
    conn = await connect(path)
    await migrate(conn)
    await conn.execute("INSERT INTO bans (guild_id, user_id, actor_id, created_at) VALUES (1, 2, 3, 0)")
    await conn.close()
    conn = await connect(path)
    try:
        assert await migrate(conn) == []
        async with conn.execute("SELECT COUNT(*) FROM bans") as cur:
            assert (await cur.fetchone())[0] == 1
        async with conn.execute("SELECT COUNT(*) FROM schema_version") as cur:
            assert (await cur.fetchone())[0] == len(db.migration_files())
    finally:
        await conn.close()


async def test_database_newer_than_code_is_refused(tmp_path):
    conn = await connect(tmp_path / "m.sqlite3")
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (9999, 'future', 0)")
        with pytest.raises(MigrationError, match="schema version 9999.*newer morph-bot"):
            await migrate(conn)
    finally:
        await conn.close()


async def test_store_open_refuses_newer_database(tmp_path):
    from bot.config import Settings
    from bot.store import Store

    path = tmp_path / "m.sqlite3"
    store = await Store.open(path, Settings())
    await store.conn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (9999, 'future', 0)")
    await store.close()
    with pytest.raises(MigrationError, match="newer"):
        await Store.open(path, Settings())


async def test_failing_migration_rolls_back_entirely(tmp_path):
    mig = tmp_path / "migs"
    mig.mkdir()
    shutil.copy(db.MIGRATIONS_DIR / "0001_init.sql", mig)
    (mig / "0002_broken.sql").write_text(
        "CREATE TABLE half_done (x INTEGER);\nALTER TABLE jobs ADD COLUMN extra TEXT;\nTHIS IS NOT SQL;\n")
    conn = await connect(tmp_path / "m.sqlite3")
    try:
        with pytest.raises(MigrationError, match="0002_broken.sql failed and was rolled back"):
            await migrate(conn, mig)
        assert "half_done" not in await tables(conn)
        async with conn.execute("PRAGMA table_info(jobs)") as cur:
            assert "extra" not in {r[1] for r in await cur.fetchall()}
        assert await schema_version(conn) == 1
        assert not conn.in_transaction
        # fixing the file and re-running applies it
        (mig / "0002_broken.sql").write_text("CREATE TABLE half_done (x INTEGER);\n")
        assert await migrate(conn, mig) == [2]
        assert "half_done" in await tables(conn)
    finally:
        await conn.close()


async def test_badly_named_or_duplicate_migration_files_are_refused(tmp_path):
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        db.migration_files(tmp_path)
    (tmp_path / "1_init.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="Two migrations have number 0001"):
        db.migration_files(tmp_path)


async def test_two_connections_migrating_at_once_apply_each_file_once(tmp_path):
    import asyncio

    path = tmp_path / "m.sqlite3"
    a, b = await connect(path), await connect(path)
    try:
        ra, rb = await asyncio.gather(migrate(a), migrate(b))
        assert sorted(ra + rb) == [v for v, _, _ in db.migration_files()]
    finally:
        await a.close()
        await b.close()


def test_sqlite_supports_returning():
    assert sqlite3.sqlite_version_info >= db.MIN_SQLITE

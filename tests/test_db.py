import shutil
import sqlite3

import pytest

from bot import db
from bot.db import DatabaseUnusable, MigrationError, open_database
from bot.db.sqlite import BUSY_TIMEOUT_MS, MIN_SQLITE, connect, schema_version
from bot.db.sqlite import migrate as sqlite_migrate

SQLITE_MIGRATIONS = db.MIGRATIONS_DIR / "sqlite"
POSTGRES_MIGRATIONS = db.MIGRATIONS_DIR / "postgres"


def migrate(conn, folder=SQLITE_MIGRATIONS):
    return sqlite_migrate(conn, folder)


def versions(folder=SQLITE_MIGRATIONS) -> list[int]:
    return [v for v, _, _ in db.migration_files(folder)]


async def tables(conn) -> set[str]:
    async with conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cur:
        return {r[0] for r in await cur.fetchall()}


async def test_fresh_database_gets_schema_wal_and_pragmas(tmp_path):
    conn = await connect(tmp_path / "sub" / "m.sqlite3")
    try:
        applied = await migrate(conn)
        assert applied == versions() and applied[0] == 1
        assert {"jobs", "guild_settings", "bans", "picks", "audit_log", "schema_version"} <= await tables(conn)
        assert await schema_version(conn) == applied[-1]
        async with conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        async with conn.execute("PRAGMA busy_timeout") as cur:
            assert (await cur.fetchone())[0] == BUSY_TIMEOUT_MS
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
            assert (await cur.fetchone())[0] == len(versions())
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
    await store.db.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (9999, 'future', 0)")
    await store.close()
    with pytest.raises(MigrationError, match="newer"):
        await Store.open(path, Settings())


async def test_failing_migration_rolls_back_entirely(tmp_path):
    mig = tmp_path / "migs"
    mig.mkdir()
    shutil.copy(SQLITE_MIGRATIONS / "0001_init.sql", mig)
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
        assert sorted(ra + rb) == versions()
    finally:
        await a.close()
        await b.close()


def test_sqlite_supports_returning():
    assert sqlite3.sqlite_version_info >= MIN_SQLITE


def test_both_dialects_have_the_same_migration_numbers():
    """One schema version means the same tables on SQLite and PostgreSQL."""
    assert versions(SQLITE_MIGRATIONS) == versions(POSTGRES_MIGRATIONS) == list(range(1, len(versions()) + 1))


# ---------------------------------------------------------------- PostgreSQL

async def test_postgres_fresh_database_gets_every_migration_and_rerun_is_a_noop(postgres):
    url = postgres.create_database()
    database = await open_database(url)
    try:
        rows = await database.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in rows] == versions(POSTGRES_MIGRATIONS)
        tables = {r["tablename"] for r in await database.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"jobs", "guild_settings", "bans", "picks", "audit_log", "interactions", "artifacts"} <= tables
        await database.execute("INSERT INTO bans (guild_id, user_id, actor_id, created_at) VALUES (?, ?, ?, ?)",
                               2 ** 62, 2, 3, 0.5)  # 64-bit Discord ids fit
    finally:
        await database.close()
    again = await open_database(url)
    try:
        assert await again.fetchval("SELECT COUNT(*) FROM bans") == 1
        assert await again.fetchval("SELECT COUNT(*) FROM schema_version") == len(versions(POSTGRES_MIGRATIONS))
    finally:
        await again.close()


async def test_postgres_database_newer_than_code_is_refused(postgres):
    url = postgres.create_database()
    database = await open_database(url)
    await database.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (9999, 'future', 0)")
    await database.close()
    with pytest.raises(MigrationError, match="schema version 9999.*newer morph-bot"):
        await open_database(url)


async def test_postgres_failing_migration_rolls_back_entirely(postgres, tmp_path):
    mig = tmp_path / "migs"
    mig.mkdir()
    shutil.copy(POSTGRES_MIGRATIONS / "0001_init.sql", mig)
    (mig / "0002_broken.sql").write_text("CREATE TABLE half_done (x INTEGER);\nALTER TABLE jobs ADD COLUMN extra TEXT;\n"
                                         "THIS IS NOT SQL;\n")
    url = postgres.create_database()
    with pytest.raises(MigrationError, match="0002_broken.sql failed and was rolled back"):
        await open_database(url, migrations_dir=mig)
    (mig / "0002_broken.sql").unlink()
    database = await open_database(url, migrations_dir=mig)
    try:
        assert await database.fetchval("SELECT to_regclass('half_done')") is None
        columns = {r["column_name"] for r in await database.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'")}
        assert "extra" not in columns and await database.fetchval("SELECT MAX(version) FROM schema_version") == 1
    finally:
        await database.close()


async def test_postgres_processes_starting_at_once_apply_each_migration_once(postgres):
    """Four processes open the same new database at the same moment: the advisory lock lets one apply
    each file; the others find it applied."""
    import asyncio
    import os
    import sys
    import time

    url = postgres.create_database()
    start_at = time.time() + 2.0
    code = ("import asyncio, sys, time\nfrom bot.db import open_database\n"
            "async def main():\n    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
            "    d = await open_database(sys.argv[1])\n    await d.close()\nasyncio.run(main())\n")
    env = {**os.environ, "PYTHONPATH": str(db.MIGRATIONS_DIR.parent)}
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", code, url, str(start_at), env=env,
                                                  stderr=asyncio.subprocess.PIPE) for _ in range(4)]
    for p in procs:
        _, err = await p.communicate()
        assert p.returncode == 0, err.decode()
    database = await open_database(url)
    try:
        rows = await database.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in rows] == versions(POSTGRES_MIGRATIONS)
    finally:
        await database.close()


async def test_unreachable_postgres_names_the_server_without_the_password(postgres):
    url = postgres.url.replace("morph@", "morph:s3cret@").rsplit(":", 1)[0] + ":1/morph"  # nothing listens on port 1
    with pytest.raises(DatabaseUnusable) as err:
        await open_database(url)
    assert "127.0.0.1:1/morph" in str(err.value) and "s3cret" not in str(err.value) and "***" in str(err.value)

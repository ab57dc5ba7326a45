import asyncio
import shutil
import sqlite3
import threading
import time

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


async def test_upgrade_with_jobs_in_flight_splits_the_claim_id_and_keeps_every_job(tmp_path):
    """A database from before 0003 stored who renders a job as one string "worker/run": the upgrade moves the
    run into its own column, so the restarted worker takes its job back, and old failures are not
    announced again."""
    import json

    from bot.config import Settings
    from bot.store import Store, WorkerRun
    from morph.request import RenderRequest

    old = tmp_path / "migs"
    old.mkdir()
    for name in ("0001_init.sql", "0002_job_identity_and_fairness.sql"):
        shutil.copy(SQLITE_MIGRATIONS / name, old)
    path = tmp_path / "m.sqlite3"
    conn = await connect(path)
    try:
        assert await migrate(conn, old) == [1, 2]
        request = json.dumps(RenderRequest(["a dog", "a cat"], frames=4).to_dict())
        for state, worker in (("running", "gpu-1/ab12cd34"), ("queued", None), ("rendered", None), ("failed", None)):
            await conn.execute(
                "INSERT INTO jobs (guild_id, channel_id, user_id, state, request, created_at, started_at, "
                "heartbeat_at, worker_id, upload_limit, token, artifact_dir, result) "
                "VALUES (1, 2, 3, ?, ?, 10, 11, 12, ?, 1000, 'feedbeef', ?, ?)",
                (state, request, worker, "x" if state == "rendered" else None,
                 '{"frame_count": 4}' if state == "rendered" else None))
    finally:
        await conn.close()

    store = await Store.open(path, Settings(), clock=lambda: 100.0)
    try:
        running, queued, rendered, failed = [await store.get(i) for i in (1, 2, 3, 4)]
        assert (running.state, running.worker_id, running.run_id) == ("running", "gpu-1", "ab12cd34")
        assert (queued.state, queued.worker_id, queued.run_id) == ("queued", None, None)
        assert failed.failure_shown_at == 10 and await store.failures_to_show() == []
        assert [j.id for j in await store.jobs_to_deliver()] == [rendered.id]
        # the restarted worker "gpu-1" takes back what its previous run left running, and renders it again
        assert [(j.id, j.state) for j in await store.recover(worker_id="gpu-1")] == [(running.id, "queued")]
        claimed = [await store.claim(WorkerRun("gpu-1", "new")) for _ in range(2)]
        assert sorted(j.id for j in claimed) == [running.id, queued.id]
        assert all((j.worker_id, j.run_id) == ("gpu-1", "new") for j in claimed)
    finally:
        await store.close()


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
        rows = await database.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {r["tablename"] for r in rows}
        assert {"jobs", "guild_settings", "bans", "picks", "audit_log", "interactions", "artifacts"} <= tables
        await database.execute("INSERT INTO bans (guild_id, user_id, actor_id, created_at) VALUES ($1, $2, $3, $4)",
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
    (mig / "0002_broken.sql").write_text("CREATE TABLE half_done (x INTEGER);\n"
                                         "ALTER TABLE jobs ADD COLUMN extra TEXT;\nTHIS IS NOT SQL;\n")
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




def _new_threads(before: set) -> list[threading.Thread]:
    """Threads started since ``before`` that are still alive after a moment (a connection's thread that
    was never stopped keeps the process alive at exit)."""
    new = [t for t in threading.enumerate() if t not in before]
    for t in new:
        t.join(2)
    return [t for t in new if t.is_alive()]


def _damaged_database(path) -> bytes:
    """A real morph database whose first page (the schema) was overwritten."""
    conn = sqlite3.connect(path)
    conn.executescript(SQLITE_MIGRATIONS.joinpath("0001_init.sql").read_text())
    conn.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    return bytes(data)


@pytest.mark.parametrize("kind", ["not a database", "damaged"])
async def test_unusable_database_is_refused_naming_the_file_and_leaves_no_thread(tmp_path, monkeypatch, kind):
    path = tmp_path / "data" / "morph.sqlite3"
    path.parent.mkdir()
    content = b"this is not SQLite\n" * 400 if kind == "not a database" else _damaged_database(path)
    path.write_bytes(content)
    monkeypatch.chdir(path.parent)  # given relative, named absolute
    before = set(threading.enumerate())
    with pytest.raises(DatabaseUnusable) as e:
        await connect("morph.sqlite3")
    text = str(e.value)
    assert f"The database {path} is damaged or not a SQLite database" in text, text
    assert "restore it from a backup" in text and "MORPH_DB" in text
    assert path.read_bytes() == content  # left as it was, for whoever repairs it
    assert _new_threads(before) == []


async def test_database_path_that_cannot_be_opened_is_refused(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(DatabaseUnusable, match=f"The database {folder} cannot be opened.*names a file"):
        await connect(folder)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatabaseUnusable, match="Cannot create the folder"):
        await connect(tmp_path / "file" / "morph.sqlite3")


def _hold_write_lock(path, seconds: float) -> threading.Thread:
    """Another connection (as another process starting would) holds a write lock on ``path`` for a while."""
    locked = threading.Event()

    def hold():
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    t = threading.Thread(target=hold)
    t.start()
    assert locked.wait(5)
    return t


async def test_start_up_waits_out_a_lock_on_a_new_file(tmp_path):
    """Two processes creating a new database at once: SQLite refuses the switch to WAL at once (no busy
    wait) while the other one writes; start-up waits for the lock instead of failing."""
    path = tmp_path / "new.sqlite3"
    holder = _hold_write_lock(path, 0.5)
    conn = await connect(path)
    try:
        await migrate(conn)
        async with conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        assert await schema_version(conn) == versions()[-1]
    finally:
        await conn.close()
        holder.join()


@pytest.mark.slow
async def test_lock_held_past_the_busy_timeout_is_refused_within_it(tmp_path):
    path = tmp_path / "new.sqlite3"
    holder = _hold_write_lock(path, 3.0)
    before = set(threading.enumerate()) - {holder}
    t0 = time.monotonic()
    try:
        with pytest.raises(DatabaseUnusable, match=f"The database {path} stayed locked .* longer than 0.3 s"):
            await connect(path, busy_timeout_ms=300)
        assert time.monotonic() - t0 < 2.5  # gave up after its timeout, not when the lock went
    finally:
        holder.join()
    assert _new_threads(before) == []

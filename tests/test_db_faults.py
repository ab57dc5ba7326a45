"""Database faults below the Discord layer, on a real PostgreSQL server (``own_postgres`` where a test stops
and starts it) and real SQLite files: a killed connection, a server that goes away while a job renders, a
frozen process holding the claims' lock, a worker whose clock is wrong. (End to end through Discord: tests/e2e.)"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from bot.config import Settings
from bot.db import DatabaseUnavailable
from bot.store import DatabaseClock, Store, WorkerRun
from bot.worker import STALE_S, Worker
from fakediscord import eventually
from morph.request import RenderRequest

G, C, ALICE = 10, 20, 1
REPO = str(Path(__file__).resolve().parent.parent)
MiB = 1024 * 1024


def small(**kw):
    return RenderRequest(["a red dog", "a blue cat"], **{"frames": 8, "steps": 2, "candidates": 3, "seed": 7, **kw})


async def submit(store, **kw):
    return await store.enqueue(guild_id=G, channel_id=C, user_id=ALICE, request=small(**kw), upload_limit=10 * MiB)


def kill_sessions(url: str) -> int:
    """End every other client session of ``url``'s database and return how many, waiting until each server
    process is gone (``pg_terminate_backend(pid, 5000)``). It runs on a thread with its own event loop and
    the caller waits for it without awaiting: the caller's loop reads nothing meanwhile, so its pool has not
    seen the close when the next query takes a connection (a pool that has seen it replaces the connection
    by itself, and nothing would be tested)."""
    import asyncpg

    async def kill() -> int:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        finally:
            await conn.close()

    killed: list[int] = []
    thread = threading.Thread(target=lambda: killed.append(asyncio.run(kill())))
    thread.start()
    thread.join()
    assert killed, "the kill failed (its traceback is above)"
    return killed[0]


async def test_a_connection_the_server_killed_is_replaced_without_an_error(postgres, caplog):
    """PostgreSQL ends the pool's idle connections (a restart of a standby, ``pg_terminate_backend``, an
    idle timeout): the next query of each must not fail, nor count as an outage in the log. A transaction
    begins again on a fresh connection (``_begin``); a read is retried on one (``fetch``)."""
    caplog.set_level(logging.WARNING, logger="bot.db")
    url = postgres.create_database()
    store = await Store.open(url, Settings(db_path=url))
    try:
        await submit(store)
        for _ in range(3):
            assert kill_sessions(url) >= 1
            assert await store.claim_interaction(time.time_ns()) is True
            assert kill_sessions(url) >= 1
            assert len(await store.db.fetch("SELECT id FROM jobs")) == 1
        assert [r.getMessage() for r in caplog.records if r.name.startswith("bot.db")] == []
    finally:
        await store.close()


async def test_the_server_going_away_is_database_unavailable_logged_once(own_postgres, caplog):
    url = own_postgres.create_database()
    store = await Store.open(url, Settings(db_path=url))
    caplog.set_level(logging.WARNING, logger="bot.db")
    try:
        own_postgres.stop_server()
        try:
            for _ in range(5):
                with pytest.raises(DatabaseUnavailable):
                    await store.claim_interaction(time.time_ns())
                with pytest.raises(DatabaseUnavailable):
                    await store.get(1)
        finally:
            own_postgres.start_server()
        assert await store.claim_interaction(time.time_ns()) is True  # by itself once it is back
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.db")]
        assert len(lines) == 2, lines
        assert "unavailable" in lines[0] and "is back after" in lines[1]
    finally:
        await store.close()


@pytest.mark.slow
async def test_a_job_rendering_through_an_outage_is_rendered_once_counting_no_attempt(own_postgres, tmp_path):
    """The server stops while a job renders and stays away past its end: the worker holds the finished
    render, writes it once the server is back, and the job is rendered (not failed, not rendered again)."""
    from morph import Morpher

    torch.set_num_threads(1)
    url = own_postgres.create_database()
    settings = Settings(db_path=url, data_dir=tmp_path / "art", cooldown_s=0, model="tiny")
    store = await Store.open(url, settings)
    render_returned = threading.Event()

    def morpher() -> Morpher:
        """The tiny Morpher, telling ``render_returned`` when its render has returned."""
        m = Morpher("tiny", device="cpu")
        render = m.render

        def render_and_tell(*args, **kwargs):
            out = render(*args, **kwargs)
            render_returned.set()
            return out
        m.render = render_and_tell  # type: ignore[method-assign]
        return m

    worker = Worker(store, morpher, settings, progress_interval_s=0.2)
    worker.preload()
    job = await submit(store, frames=16, steps=4)
    await worker.start()
    try:
        async def rendering():
            j = await store.get(job.id)
            return j.progress is not None and j.progress.frames_done >= 1
        assert await eventually(rendering, timeout=120, interval=0.05)
        own_postgres.stop_server()
        try:
            assert not render_returned.is_set()  # it was still rendering when the server went
            # the render ends while the server is away: the worker waits to write it
            assert await eventually(lambda: worker.current is not None and worker._cancel.get(job.id) is not None,
                                    timeout=5)
            assert await asyncio.to_thread(render_returned.wait, 120)
        finally:
            own_postgres.start_server()

        async def rendered():
            j = await store.get(job.id)
            return j if j.state == "rendered" else None
        done = await eventually(rendered, timeout=60, interval=0.1)
        assert done is not None, (await store.get(job.id)).state
        assert done.attempts == 0 and done.error is None and done.result.frame_count == 16
        assert await store.artifacts.read(done, "morph.gif") is not None
    finally:
        await worker.stop()
        await store.close()


async def test_a_worker_whose_clock_is_90_s_behind_keeps_the_job_it_heartbeats(db_url):
    """Heartbeats and take-overs compare with the database's clock: a worker 90 s behind writes heartbeats
    in the database's time, so another worker's look for stale jobs does not take its job away."""
    settings = Settings(db_path=db_url, cooldown_s=0)
    behind = await Store.open(db_url, settings, clock=DatabaseClock(machine=lambda: time.time() - 90))
    other = await Store.open(db_url, settings)
    try:
        assert abs(behind.clock() - time.time()) < 2.0  # set to the database's time
        job = await submit(other)
        run = WorkerRun("late", "r1")
        assert (await behind.claim(run)).id == job.id
        assert await behind.heartbeat(job.id, run) == "running"
        assert await other.recover(stale_s=STALE_S) == []
        assert (await other.get(job.id)).state == "running"
    finally:
        await behind.close()
        await other.close()


FROZEN = textwrap.dedent("""
    import asyncio, sys
    from bot.db import open_database

    async def main():
        db = await open_database(sys.argv[1])
        async with db.transaction() as tx:
            await tx.serialize("claims")
            print("locked", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
""")


@pytest.mark.slow
async def test_a_frozen_process_holding_the_claims_lock_releases_the_queue_within_seconds(postgres):
    url = postgres.create_database()
    store = await Store.open(url, Settings(db_path=url, cooldown_s=0))
    job = await submit(store)
    holder = subprocess.Popen([sys.executable, "-c", FROZEN, url], stdout=subprocess.PIPE, text=True,  # noqa: ASYNC220
                              cwd=REPO)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 60)
        assert line.strip() == "locked"
        os.kill(holder.pid, signal.SIGSTOP)  # frozen inside its transaction, the lock held
        started = time.monotonic()
        claimed = None
        while claimed is None and time.monotonic() - started < 25:
            try:
                claimed = await asyncio.wait_for(store.claim(WorkerRun("w", "r")), 25)
            except DatabaseUnavailable:  # the lock's wait timed out first: the worker simply tries again
                await asyncio.sleep(0.2)
        waited = time.monotonic() - started
        assert claimed is not None and claimed.id == job.id
        assert waited < 20, waited
    finally:
        holder.kill()
        holder.wait()
        await store.close()


@pytest.mark.slow
async def test_an_outage_longer_than_the_stale_window_takes_no_job_over(own_postgres, tmp_path, monkeypatch):
    """The server is away longer than the stale window while a job renders: no worker can heartbeat meanwhile.
    When it is back, an idle worker of another process (one that saw the outage, and one started after it)
    must not take the job over as if its worker were dead: the job is rendered once, by the worker that had
    it, counting no attempt."""
    import bot.worker
    from morph import Morpher

    torch.set_num_threads(1)
    stale_s = 4.0
    monkeypatch.setattr(bot.worker, "STALE_S", stale_s)
    monkeypatch.setattr(bot.worker, "RECOVER_INTERVAL_S", 0.2)
    url = own_postgres.create_database()
    settings = Settings(db_path=url, data_dir=tmp_path / "art", cooldown_s=0, model="tiny")
    stores = [await Store.open(url, settings) for _ in range(3)]  # three processes
    # heartbeats 3 s apart (within the 4-s stale window): after the outage the idle workers look first
    renderer = Worker(stores[0], lambda: Morpher("tiny", device="cpu"), settings, worker_id="renderer",
                      progress_interval_s=3.0)
    idle = Worker(stores[1], lambda: Morpher("tiny", device="cpu"), settings, worker_id="idle", poll_s=0.2)
    late = Worker(stores[2], lambda: Morpher("tiny", device="cpu"), settings, worker_id="late", poll_s=0.2)
    # long enough to outlast the outage (tiny renders 24 frames of 4 steps in under 2 s: over before it)
    job = await submit(stores[0], frames=24, steps=50)
    renderer.preload()
    await renderer.start()
    try:
        async def rendering():
            j = await stores[0].get(job.id)
            return j.progress is not None and j.progress.frames_done >= 1
        assert await eventually(rendering, timeout=120, interval=0.05)
        await idle.start()
        assert await eventually(lambda: idle._last_recover > 0, timeout=10)  # it looks for stale jobs
        assert (await stores[0].get(job.id)).state == "running"  # the outage comes while it renders
        own_postgres.stop_server()
        try:
            await asyncio.sleep(stale_s + 2)  # every heartbeat is older than the stale window now
        finally:
            own_postgres.start_server()
        await late.start()

        async def finished():
            j = await stores[0].get(job.id)
            return j if j.state in ("rendered", "failed") else None
        done = await eventually(finished, timeout=120, interval=0.1)
        assert done is not None
        assert (done.state, done.worker_id, done.attempts) == ("rendered", "renderer", 0)
        assert idle.current is None and late.current is None
    finally:
        for w in (renderer, idle, late):
            await w.stop()
        for s in stores:
            await s.close()

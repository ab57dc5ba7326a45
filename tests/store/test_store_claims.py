"""Store: queue order and positions, atomic fair claims (connections and processes racing), recovery of
running jobs, delivery states."""
import asyncio
import os
import subprocess
import sys
import time

import pytest
from store_helpers import ADMIN, ALICE, BOB, CAROL, G1, G2, ROOT, count_jobs, req, run, submit

from bot.jobs import Failure, Job, Refused, read_failure
from bot.result import JobResult
from bot.store import MAX_ATTEMPTS, DatabaseClock, Store


async def test_the_default_clock_is_the_databases(settings, backend):
    """PostgreSQL's clock is measured against this machine's (DatabaseClock); a SQLite file's is the clock of
    this machine, which holds the file: read without a round trip to the database."""
    store = await Store.open(settings.db_path, settings)
    try:
        if backend == "sqlite":
            assert store.clock is time.time
        else:
            assert isinstance(store.clock, DatabaseClock) and store.clock.synced_at is not None
        assert abs(store.clock() - time.time()) < 2.0
    finally:
        await store.close()


# ---------------------------------------------------------------- queue order, claim, positions

async def test_position_and_claim_order_skip_paused_guilds(store, clock):
    a = await submit(store, user=ALICE, clock=clock)
    b = await submit(store, user=BOB, guild=G2, clock=clock)
    c = await submit(store, user=CAROL, clock=clock)
    assert [await store.position(j.id) for j in (a, b, c)] == [1, 2, 3]
    await store.pause(G1, ADMIN)
    assert await store.is_paused(G1)
    assert await store.position(b.id) == 1
    first = await store.claim(run("w1"))
    assert first.id == b.id and first.state == "running" and first.worker_id == "w1"
    assert first.started_at == clock.t
    assert await store.claim(run("w1")) is None  # only paused jobs left
    assert await store.position(b.id) is None  # running: no position
    await store.resume(G1, ADMIN)
    assert [(await store.claim(run("w1"))).id, (await store.claim(run("w1"))).id] == [a.id, c.id]
    assert await store.claim(run("w1")) is None


async def test_positions_in_a_paused_guild_are_the_places_after_resume(store, clock):
    a1, b1, a2, a3, b2 = [await submit(store, user=u, guild=g, clock=clock)
                          for u, g in ((ALICE, G1), (BOB, G2), (CAROL, G1), (ADMIN, G1), (ALICE, G2))]
    await store.pause(G1, ADMIN)
    # unpaused G2 jobs skip the paused ones; paused G1 jobs get their places in the rotation after resume
    assert [await store.position(j.id) for j in (b1, b2)] == [1, 2]
    assert [await store.position(j.id) for j in (a1, a2, a3)] == [1, 3, 5]
    await store.resume(G1, ADMIN)
    # guilds take turns: G1, G2, G1, G2, G1
    assert [await store.position(j.id) for j in (a1, b1, a2, b2, a3)] == [1, 2, 3, 4, 5]


async def test_queued_positions_equal_position(store, clock):
    G3 = 3003
    guilds = [G1, G2, G3, G1, G3, G2, G1, G1, G3, G2, G3, G1]
    jobs = [await submit(store, user=100 + i, guild=g, clock=clock) for i, g in enumerate(guilds)]
    await store.claim(run("w1"))  # running: no position
    await store.cancel(jobs[5].id, actor_id=105)
    await store.pause(G1, ADMIN)
    await store.pause(G3, ADMIN)
    await store.claim(run("w1"))  # the oldest job of unpaused G2
    await store.pause(G2, ADMIN)
    await store.resume(G2, ADMIN)  # a guild row that is not paused

    async def check():
        got = await store.queued_positions()
        expected = [(j.id, await store.position(j.id), await store.is_paused(j.guild_id)) for j in jobs]
        assert [(j.id, pos, paused) for j, pos, paused in got] == [e for e in expected if e[1] is not None]
        assert all(j.state == "queued" for j, _, _ in got)
        return got

    assert len(await check()) == 9
    await store.resume(G3, ADMIN)
    await check()


async def test_claim_race_between_two_connections(settings, clock, tmp_path):
    s1 = await Store.open(settings.db_path, settings.replace(cooldown_s=0, max_user_active=100, max_guild_queue=1000))
    s2 = await Store.open(settings.db_path, settings)
    try:
        ids = [(await submit(s1, user=u % 7)).id for u in range(40)]

        async def drain(store, wid):
            got = []
            while (job := await store.claim(run(wid))) is not None:
                got.append(job.id)
                await asyncio.sleep(0)
            return got

        r1, r2, r3 = await asyncio.gather(drain(s1, "a"), drain(s2, "b"), drain(s1, "c"))
        claimed = r1 + r2 + r3
        assert sorted(claimed) == ids  # every job exactly once
        print(f"connection claims: {len(r1)} + {len(r3)} (same connection), {len(r2)} (second connection)")
        assert await s1.db.fetchval("SELECT COUNT(*) FROM jobs WHERE state = 'running'") == 40
    finally:
        await s1.close()
        await s2.close()


async def test_per_user_limit_holds_when_two_connections_enqueue_at_once(settings):
    relaxed = settings.replace(cooldown_s=0)
    s1, s2 = await Store.open(settings.db_path, relaxed), await Store.open(settings.db_path, relaxed)
    try:
        results = await asyncio.gather(*(submit(s, request=req(seed=i)) for i in range(6) for s in (s1, s2)),
                                       return_exceptions=True)
        ok = [r for r in results if isinstance(r, Job)]
        refused = [r for r in results if isinstance(r, Refused)]
        assert len(ok) == 2 and len(refused) == 10 and len(ok) + len(refused) == len(results)
        assert await count_jobs(s1) == 2
    finally:
        await s1.close()
        await s2.close()


CLAIMER = """
import asyncio, sys, time
from bot.config import Settings
from bot.store import Store, WorkerRun
async def main():
    s = await Store.open(sys.argv[1], Settings())
    time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # start together
    got = []
    while (j := await s.claim(WorkerRun(sys.argv[2], "r"))) is not None:
        got.append(j.id)
    await s.close()
    print(" ".join(map(str, got)))
asyncio.run(main())
"""


@pytest.mark.slow
async def test_claim_race_between_two_processes(settings):
    """Two OS processes drain the same queue at the same moment: every job is claimed exactly once.
    (Repeated, up to 3 rounds, until both processes actually got work, so the race really happened.)"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # three rounds of 100 claimed (running) jobs stay active: every queue limit above that
    s = await Store.open(settings.db_path, settings.replace(cooldown_s=0, max_user_active=10**4, max_guild_queue=10**4,
                                                            max_queue=10**4))
    splits = []
    try:
        for _round in range(3):
            ids = [(await submit(s, request=req(seed=i))).id for i in range(100)]
            start_at = time.time() + 2.5
            # blocking is fine: the claimers are other processes, and nothing needs this event loop meanwhile
            procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(settings.db_path), f"p{i}",  # noqa: ASYNC220
                                       str(start_at)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
                     for i in range(2)]
            outs = []
            for p in procs:
                out, err = p.communicate(timeout=120)
                assert p.returncode == 0, err
                outs.append([int(x) for x in out.split()])
            assert sorted(outs[0] + outs[1]) == ids  # exactly once each
            for o in outs:
                assert o == sorted(o)  # each process saw the queue in order
            splits.append((len(outs[0]), len(outs[1])))
            if all(splits[-1]):
                break
    finally:
        await s.close()
    print(f"process claims per round: {splits}")
    assert all(splits[-1]), "the two processes never overlapped"


# ---------------------------------------------------------------- recovery

async def test_recover_requeues_running_and_fails_after_three_attempts(store, clock):
    job = await submit(store)
    rendered = await submit(store, user=BOB)
    await store.claim(run("w1"))
    await store.claim(run("w1"))
    await store.mark_rendered(rendered.id, JobResult(frame_count=3), run("w1"))
    for attempt in range(1, MAX_ATTEMPTS):
        changed = await store.recover()
        assert [(j.id, j.state, j.attempts) for j in changed] == [(job.id, "queued", attempt)]
        assert (await store.claim(run("w1"))).id == job.id
    changed = await store.recover()
    assert len(changed) == 1
    failed = changed[0]
    assert failed.state == "failed" and failed.attempts == MAX_ATTEMPTS
    assert read_failure(failed.error) == (Failure.CRASHED, {"attempts": 3})
    assert await store.claim(run("w1")) is None
    # rendered job untouched and still due for delivery, never re-rendered
    r = await store.get(rendered.id)
    assert r.state == "rendered" and r.attempts == 0
    assert [j.id for j in await store.jobs_to_deliver()] == [rendered.id]


async def test_recover_only_one_worker_or_stale_heartbeats(store, clock):
    a = await submit(store)
    b = await submit(store, user=BOB)
    await store.claim(run("w1"))
    await store.claim(run("w2"))
    clock.advance(100)
    await store.heartbeat(b.id, run("w2"))
    assert [j.id for j in await store.recover(stale_s=50)] == [a.id]
    assert await store.recover(worker_id="w9") == []
    assert [j.id for j in await store.recover(worker_id="w2")] == [b.id]


async def test_recover_by_worker_name_and_ownership_of_a_claim(store, clock):
    """A worker claims as ``<name>/<run>``: recover(worker_id=name) takes back every run of that name (and
    nothing of names that merely start alike); the old run then finds its claim lost."""
    jobs = [await submit(store, user=u, clock=clock) for u in (ALICE, BOB, CAROL)]
    for wid in ("w1/old", "w10/x", "w1x"):
        await store.claim(run(wid))
    assert [j.id for j in await store.recover(worker_id="w1")] == [jobs[0].id]
    assert await store.heartbeat(jobs[0].id, run("w1/old")) == "lost"
    assert await store.heartbeat(jobs[1].id, run("w10/x")) == "running"
    assert await store.heartbeat(jobs[1].id, run("w10/y")) == "lost"  # another run of that worker
    again = await store.claim(run("w1/new"))
    assert again.id == jobs[0].id
    # the old run can neither finish, fail nor requeue what the new one holds
    assert await store.mark_rendered(again.id, JobResult(frame_count=2), run("w1/old")) is False
    assert await store.mark_failed(again.id, "boom", run("w1/old")) is False
    assert await store.requeue(again.id, run("w1/old")) is False
    assert (await store.get(again.id)).state == "running"
    assert await store.mark_rendered(again.id, JobResult(frame_count=2), run("w1/new")) is True


async def test_withdraw_takes_back_unanswered_jobs_in_any_unposted_state(store, clock):
    running, rendered, delivered = [await submit(store, user=u, clock=clock) for u in (BOB, CAROL, ADMIN)]
    assert [(await store.claim(run("w1"))).id for _ in range(3)] == [running.id, rendered.id, delivered.id]
    queued = await submit(store, user=ALICE, clock=clock)
    await store.mark_rendered(rendered.id, JobResult(frame_count=2), run("w1"))
    await store.mark_rendered(delivered.id, JobResult(frame_count=2), run("w1"))
    await store.mark_delivered(delivered.id, 7)
    assert [await store.withdraw(j.id) for j in (queued, running, rendered, delivered)] == [True, True, True, False]
    states = [(await store.get(j.id)).state for j in (queued, running, rendered, delivered)]
    assert states == ["cancelled", "cancelled", "cancelled", "delivered"]
    assert await store.jobs_to_deliver(now=clock.t + 10**6) == []


async def test_delivery_states(store, clock):
    job = await submit(store)
    await store.claim(run("w1"))
    assert await store.jobs_to_deliver() == []
    assert await store.mark_rendered(job.id, JobResult(frame_count=2), run("w1")) is True
    assert await store.mark_rendered(job.id, JobResult(frame_count=2), run("w1")) is False  # not running any more
    due = await store.jobs_to_deliver()
    # only the folder's name is stored: it is found in the data folder wherever that is
    assert len(due) == 1 and due[0].result == JobResult(frame_count=2) and due[0].artifact_dir == job.folder_name
    j = await store.delivery_failed(job.id, "503 from Discord", retry_in=30)
    assert j.state == "rendered" and j.delivery_attempts == 1 and j.next_delivery_at == clock.t + 30
    assert await store.jobs_to_deliver() == []
    # a front starting up takes every rendered job, whatever its retry time (its previous run was posting it)
    assert [j.id for j in await store.jobs_to_deliver(ignore_backoff=True)] == [job.id]
    assert await store.next_retry_at() == clock.t + 30  # the delivery loop sleeps until then
    assert await store.next_retry_at(now=clock.t + 30) is None  # due now, nothing later
    assert len(await store.jobs_to_deliver(now=clock.t + 30)) == 1
    assert await store.mark_delivered(job.id, 555) is True
    assert await store.mark_delivered(job.id, 556) is False
    j = await store.get(job.id)
    assert j.state == "delivered" and j.result_message_id == 555 and j.delivered_at == clock.t
    assert j.error is None  # the failed attempt is history once delivered
    assert await store.next_retry_at() is None
    assert await store.jobs_to_deliver(ignore_backoff=True) == []  # delivered never again
    assert await store.recover() == []

    other = await submit(store, user=BOB)
    await store.claim(run("w1"))
    await store.mark_rendered(other.id, JobResult(frame_count=2), run("w1"))
    gave_up = await store.delivery_failed(other.id, "Missing Access and the token expired", retry_in=None)
    assert gave_up.state == "failed" and gave_up.error.startswith("Missing Access")


async def test_status_message_and_user_jobs(store, clock):
    a = await submit(store, clock=clock)
    await submit(store, user=BOB, clock=clock)
    b = await submit(store, clock=clock)
    await store.set_status_message(a.id, 4242)
    assert (await store.get(a.id)).status_message_id == 4242
    assert [j.id for j in await store.user_jobs(G1, ALICE)] == [a.id, b.id]
    await store.claim(run("w1"))
    await store.mark_failed(a.id, "boom")
    assert [j.id for j in await store.user_jobs(G1, ALICE)] == [b.id]
    assert [j.id for j in await store.user_jobs(G1, ALICE, states=["failed"])] == [a.id]


async def test_the_playground_queue_panel_words_a_failure_in_every_language(store):
    """The playground's queue panel carries a failed job's reason in each language (the page shows the one of
    the member it acts as), worded from the stored kind."""
    from bot.jobs import failure
    from bot.playground.page import store_jobs

    job = await submit(store)
    await store.mark_failed(job.id, failure(Failure.CRASHED, attempts=3))
    rows = await store_jobs(lambda: store, G1, {ALICE: "alice"})()
    assert rows[0]["error"] == {"en": "the renderer crashed 3 times on this job",
                                "ja": "このジョブで生成処理が 3 回続けて異常終了しました"}

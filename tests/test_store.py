import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import Settings
from bot.jobs import Job, Refused
from bot.store import MAX_ATTEMPTS, Limits, Store, WorkerRun
from morph.request import MorphError, RenderRequest

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
G1, G2 = 1001, 2002  # guilds
C1, C2 = 11, 12  # channels
ALICE, BOB, CAROL, ADMIN = 1, 2, 3, 99


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, s):
        self.t += s


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    return request.param


@pytest.fixture
def settings(backend, tmp_path, request):
    """The same Store tests on a SQLite file and on a fresh database of a real PostgreSQL server."""
    db = tmp_path / "m.sqlite3" if backend == "sqlite" else request.getfixturevalue("postgres").create_database()
    return Settings(db_path=db, data_dir=tmp_path / "art")


def sqlite_only(settings) -> None:
    if not isinstance(settings.db_path, Path):
        pytest.skip("files in MORPH_DATA_DIR: SQLite only (PostgreSQL keeps them in the database)")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
async def store(settings, clock):
    s = await Store.open(settings.db_path, settings, clock=clock)
    yield s
    await s.close()


def run(spec: str) -> WorkerRun:
    """``"w1/old"`` → worker w1, run old (``"w1"``: run r1)."""
    worker, _, run_id = spec.partition("/")
    return WorkerRun(worker, run_id or "r1")


def req(a="a dog", b="a cat", **kw):
    return RenderRequest(a, b, **kw)


async def submit(store, user=ALICE, guild=G1, channel=C1, clock=None, **kw) -> Job:
    job = await store.enqueue(guild_id=guild, channel_id=channel, user_id=user,
                              request=kw.pop("request", req()), upload_limit=kw.pop("upload_limit", 10 * MiB), **kw)
    if clock is not None:
        clock.advance(60)  # past the cooldown
    return job


async def count_jobs(store) -> int:
    return await store.db.fetchval("SELECT COUNT(*) FROM jobs")


async def stored(store, job) -> bool:
    """Are the job's files still kept (a folder, or rows of the database)?"""
    return await store.artifacts.read(job, "morph.gif") is not None


# ---------------------------------------------------------------- enqueue and limits

async def test_enqueue_stores_everything(store, clock):
    job = await store.enqueue(guild_id=G1, channel_id=C1, user_id=ALICE, request=req("  a   dog ", "a cat", frames=8),
                              upload_limit=25 * MiB, interaction_token="tok", application_id=77, boomerang=True)
    assert job.id == 1 and job.state == "queued"
    assert job.request.prompt_a == "a dog" and job.request.frames == 8  # validated and normalised
    assert (job.guild_id, job.channel_id, job.user_id, job.upload_limit) == (G1, C1, ALICE, 25 * MiB)
    assert job.created_at == clock.t and job.attempts == 0 and job.boomerang
    assert job.interaction_token == "tok" and job.application_id == 77
    assert job.interaction_expires_at == clock.t + 15 * 60
    assert job.interaction_alive(clock.t + 899) and not job.interaction_alive(clock.t + 901)
    again = await store.get(job.id)
    assert again == job
    assert await store.get(999) is None


async def test_bad_input_is_refused_and_nothing_written(store):
    for bad in (req(""), req("a", "   "), req("x" * 5000), req("a\x00b"), req("@everyone"), req("a", "<@&1>"),
                req(frames=1), req(frames=61), req(steps=0), req(seed=-5)):
        with pytest.raises(Refused):
            await submit(store, request=bad)
    assert await count_jobs(store) == 0


async def test_refused_is_a_morph_error():
    assert issubclass(Refused, MorphError)


async def test_per_user_active_limit_names_the_jobs(store, clock):
    j1 = await submit(store, clock=clock)
    j2 = await submit(store, clock=clock)
    with pytest.raises(Refused) as e:
        await submit(store, clock=clock)
    msg = str(e.value)
    assert f"You already have 2 morphs in the queue (#{j1.id}, #{j2.id})" in msg and "/morph-cancel" in msg
    # another user and the same user in another guild are not affected
    await submit(store, user=BOB, clock=clock)
    await submit(store, guild=G2, clock=clock)
    # a running job still counts, a finished one does not
    claimed = await store.claim(run("w1"))
    assert claimed.id == j1.id
    with pytest.raises(Refused):
        await submit(store, clock=clock)
    await store.mark_rendered(j1.id, {"frame_count": 2}, run("w1"))
    j3 = await submit(store, clock=clock)
    assert j3.state == "queued"
    assert await count_jobs(store) == 5


async def test_guild_queue_cap(store, clock):
    await store.set_limits(G1, ADMIN, max_guild_queue=3)
    for u in (ALICE, BOB, CAROL):
        await submit(store, user=u, clock=clock)
    with pytest.raises(Refused, match=r"queue is full \(3 .*limit is 3"):
        await submit(store, user=44, clock=clock)
    await submit(store, user=44, guild=G2, clock=clock)  # other guild unaffected
    assert await count_jobs(store) == 4


async def test_cooldown_with_injected_time(store, clock):
    await submit(store)
    clock.advance(10)
    with pytest.raises(Refused, match="another morph in 20 s"):
        await submit(store)
    with pytest.raises(Refused, match="in 1 s"):
        await submit(store, now=clock.t + 19.9)
    await submit(store, now=clock.t + 20)
    assert await count_jobs(store) == 2
    # a guild may make it longer, never shorter than the operator's MORPH_COOLDOWN_S
    with pytest.raises(Refused, match="at least 30 s"):
        await store.set_limits(G2, ADMIN, cooldown_s=0)
    await store.set_limits(G2, ADMIN, cooldown_s=100)
    await submit(store, guild=G2)
    with pytest.raises(Refused, match="another morph in 60 s"):
        await submit(store, guild=G2, now=clock.t + 40)
    assert await count_jobs(store) == 3


async def test_banned_user_banned_words_and_channel_allow_list(store, clock):
    cancelled = await store.ban(G1, ALICE, ADMIN)
    assert cancelled == 0
    with pytest.raises(Refused, match="banned"):
        await submit(store)
    await submit(store, guild=G2, clock=clock)  # only banned in G1
    assert await store.unban(G1, ALICE, ADMIN) is True
    await submit(store, clock=clock)

    await store.set_limits(G1, ADMIN, banned_words=["Horse", "hot dog"])
    with pytest.raises(Refused, match="second prompt contains a word this server does not allow"):
        await submit(store, user=BOB, request=req("a dog", "a HORSE"))
    with pytest.raises(Refused, match="negative prompt"):
        await submit(store, user=BOB, request=req(negative="hot  dog"))
    await submit(store, user=BOB, guild=G2, request=req("a dog", "a horse"), clock=clock)

    await store.set_limits(G1, ADMIN, allowed_channels=[C2])
    with pytest.raises(Refused, match=f"not enabled in this channel. Use it in <#{C2}>"):
        await submit(store, user=CAROL, channel=C1)
    await submit(store, user=CAROL, channel=C2, clock=clock)
    assert await count_jobs(store) == 4


async def test_ban_cancels_queued_jobs_of_that_user(store, clock):
    a = await submit(store, clock=clock)
    b = await submit(store, user=BOB, clock=clock)
    assert await store.ban(G1, ALICE, ADMIN) == 1
    assert (await store.get(a.id)).state == "cancelled"
    assert (await store.get(b.id)).state == "queued"


async def test_guild_frame_cap(store):
    await store.set_limits(G1, ADMIN, max_frames=10)
    with pytest.raises(Refused, match="at most 10 on this server"):
        await submit(store, request=req(frames=11))
    assert (await submit(store, request=req(frames=10))).request.frames == 10


async def test_set_limits_validates_and_resets(store):
    limits = await store.get_limits(G1)
    assert limits == Limits(paused=False, max_user_active=2, max_guild_queue=20, cooldown_s=30.0, max_frames=60,
                            banned_words=(), allowed_channels=(), default_format="both")
    for bad in ({"max_user_active": 0}, {"max_user_active": "3"}, {"cooldown_s": -1}, {"max_frames": 500},
                {"allowed_channels": ["abc"]}, {"nonsense": 1}, {}, {"default_format": "webm"}):
        with pytest.raises(Refused):
            await store.set_limits(G1, ADMIN, **bad)
    assert await store.get_limits(G1) == limits  # nothing changed
    new = await store.set_limits(G1, ADMIN, max_user_active=1, banned_words="Foo, bar baz", allowed_channels=C1)
    assert new.max_user_active == 1 and new.banned_words == ("bar baz", "foo") and new.allowed_channels == (C1,)
    reset = await store.set_limits(G1, ADMIN, max_user_active=None, allowed_channels=None)
    assert reset.max_user_active == 2 and reset.allowed_channels == ()
    assert (await store.get_limits(G2)).max_user_active == 2  # other guild untouched


async def test_the_format_of_a_job_comes_from_the_command_else_the_servers_default(store, clock):
    """``/morph format:`` wins; without it the server's default_format, else MORPH_FORMAT (here: both). An
    unknown format is refused and queues nothing."""
    assert (await submit(store, clock=clock)).format == "both"
    assert (await store.set_limits(G1, ADMIN, default_format="mp4")).default_format == "mp4"
    assert (await submit(store, user=BOB, clock=clock)).format == "mp4"
    assert (await submit(store, user=CAROL, output_format="gif", clock=clock)).format == "gif"
    assert (await submit(store, user=BOB, guild=G2, clock=clock)).format == "both"  # another server's default
    with pytest.raises(Refused, match="format must be one of: mp4, gif, both"):
        await submit(store, user=ALICE, output_format="webm", clock=clock)
    assert len(await store.list_jobs(None, states=["queued"])) == 4
    assert (await store.set_limits(G1, ADMIN, default_format=None)).default_format == "both"


async def test_a_refine_job_remembers_its_parent_and_the_message_to_reply_to(store, clock):
    parent = await submit(store, clock=clock)
    child = await submit(store, user=BOB, request=req().refine(0.25, 0.5, 6), parent_id=parent.id,
                         reply_to_message_id=2 ** 62, clock=clock)
    again = await store.get(child.id)
    assert (again.parent_id, again.reply_to_message_id) == (parent.id, 2 ** 62)
    assert (again.request.t_start, again.request.t_end, again.request.frames) == (0.25, 0.5, 6)
    assert (parent.parent_id, parent.reply_to_message_id) == (None, None)


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
    s = await Store.open(settings.db_path, settings.replace(cooldown_s=0, max_user_active=10**4, max_guild_queue=10**4))
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
    await store.mark_rendered(rendered.id, {"frame_count": 3}, run("w1"))
    for attempt in range(1, MAX_ATTEMPTS):
        changed = await store.recover()
        assert [(j.id, j.state, j.attempts) for j in changed] == [(job.id, "queued", attempt)]
        assert (await store.claim(run("w1"))).id == job.id
    changed = await store.recover()
    assert len(changed) == 1
    failed = changed[0]
    assert failed.state == "failed" and failed.attempts == MAX_ATTEMPTS
    assert failed.error == "the renderer crashed 3 times on this job"
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
    assert await store.mark_rendered(again.id, {"frame_count": 2}, run("w1/old")) is False
    assert await store.mark_failed(again.id, "boom", run("w1/old")) is False
    assert await store.requeue(again.id, run("w1/old")) is False
    assert (await store.get(again.id)).state == "running"
    assert await store.mark_rendered(again.id, {"frame_count": 2}, run("w1/new")) is True


async def test_withdraw_takes_back_unanswered_jobs_in_any_unposted_state(store, clock):
    running, rendered, delivered = [await submit(store, user=u, clock=clock) for u in (BOB, CAROL, ADMIN)]
    assert [(await store.claim(run("w1"))).id for _ in range(3)] == [running.id, rendered.id, delivered.id]
    queued = await submit(store, user=ALICE, clock=clock)
    await store.mark_rendered(rendered.id, {"frame_count": 2}, run("w1"))
    await store.mark_rendered(delivered.id, {"frame_count": 2}, run("w1"))
    await store.mark_delivered(delivered.id, 7)
    assert [await store.withdraw(j.id) for j in (queued, running, rendered, delivered)] == [True, True, True, False]
    states = [(await store.get(j.id)).state for j in (queued, running, rendered, delivered)]
    assert states == ["cancelled", "cancelled", "cancelled", "delivered"]
    assert await store.jobs_to_deliver(now=clock.t + 10**6) == []


async def test_delivery_states(store, clock):
    job = await submit(store)
    await store.claim(run("w1"))
    assert await store.jobs_to_deliver() == []
    assert await store.mark_rendered(job.id, {"frame_count": 2}, run("w1")) is True
    assert await store.mark_rendered(job.id, {"frame_count": 2}, run("w1")) is False  # not running any more
    due = await store.jobs_to_deliver()
    # only the folder's name is stored: it is found in the data folder wherever that is
    assert len(due) == 1 and due[0].result == {"frame_count": 2} and due[0].artifact_dir == job.folder_name
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
    await store.mark_rendered(other.id, {"frame_count": 2}, run("w1"))
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


# ---------------------------------------------------------------- cancel and admin scope

async def test_cancel_permissions(store, clock):
    a = await submit(store, clock=clock)
    with pytest.raises(Refused, match="not yours"):
        await store.cancel(a.id, actor_id=BOB)
    with pytest.raises(Refused, match="another server"):
        await store.cancel(a.id, actor_id=ADMIN, admin=True, guild_id=G2)
    with pytest.raises(Refused, match="no morph #404"):
        await store.cancel(404, actor_id=ALICE)
    assert (await store.get(a.id)).state == "queued"
    assert await store.audit_log(None) == []  # refused attempts change nothing
    j = await store.cancel(a.id, actor_id=ALICE)
    assert j.state == "cancelled" and j.cancelled_by == ALICE and j.finished_at == clock.t
    with pytest.raises(Refused, match="already cancelled"):
        await store.cancel(a.id, actor_id=ALICE)
    assert await store.audit_log(G1) == []  # the author's own cancel is not an admin action

    b = await submit(store, clock=clock)
    running = await store.claim(run("w1"))
    assert running.id == b.id
    j = await store.cancel(b.id, actor_id=ADMIN, admin=True, guild_id=G1)
    assert j.state == "cancelled"
    assert await store.heartbeat(b.id, run("w1")) == "cancelled"  # how the worker learns about it
    assert await store.mark_rendered(b.id, {}, run("w1")) is False  # a late render does not resurrect it
    log = await store.audit_log(G1)
    assert [(r["action"], r["actor_id"]) for r in log] == [("cancel", ADMIN)] and f"#{b.id}" in log[0]["detail"]
    # bot owner: admin without a guild
    c = await submit(store, guild=G2, clock=clock)
    assert (await store.cancel(c.id, actor_id=ADMIN, admin=True)).state == "cancelled"


async def test_admin_ops_are_scoped_and_audited(store, clock):
    mine = [await submit(store, user=u, clock=clock) for u in (ALICE, BOB)]
    other = await submit(store, user=CAROL, guild=G2, clock=clock)
    assert {j.id for j in await store.list_jobs(G1)} == {j.id for j in mine}
    assert {j.id for j in await store.list_jobs(None)} == {j.id for j in mine} | {other.id}
    await store.pause(G1, ADMIN)
    assert not await store.is_paused(G2)
    await store.resume(G1, ADMIN)
    assert await store.clear(G1, ADMIN) == 2
    assert (await store.get(other.id)).state == "queued"
    assert await store.list_jobs(G1) == []
    assert [j.id for j in await store.list_jobs(G1, states=["cancelled"])] == [mine[1].id, mine[0].id]
    await store.ban(G1, BOB, ADMIN)
    await store.unban(G1, BOB, ADMIN)
    await store.set_limits(G1, ADMIN, cooldown_s=45, banned_words=["x", "y"])
    log = await store.audit_log(G1)
    assert [r["action"] for r in log] == ["limits", "unban", "ban", "clear", "resume", "pause"]
    assert all(r["guild_id"] == G1 and r["actor_id"] == ADMIN and r["created_at"] == clock.t for r in log)
    assert "2 queued morphs cancelled" in log[3]["detail"] and f"<@{BOB}>" in log[2]["detail"]
    assert "cooldown_s=45.0" in log[0]["detail"] and "banned_words=2 words" in log[0]["detail"]
    assert await store.audit_log(G2) == []
    assert len(await store.audit_log(G1, limit=2)) == 2


async def test_stats(store, clock):
    a = await submit(store, clock=clock)
    b = await submit(store, user=BOB, clock=clock)
    await submit(store, user=CAROL, guild=G2, clock=clock)
    await store.claim(run("w1"))
    clock.advance(12)
    await store.mark_rendered(a.id, {"frame_count": 2}, run("w1"))
    assert (await store.claim(run("w1"))).guild_id == G2  # G2's turn: G1 was served last
    await store.mark_failed(b.id, "bad")
    st = await store.stats(G1)
    assert (st["queued"], st["running"], st["rendered"], st["failed"]) == (0, 0, 1, 1)
    assert st["queue_total"] == 0 and st["jobs_last_hour"] == 2 and st["done_last_hour"] == 1
    assert st["failed_last_hour"] == 1 and st["paused"] is False
    assert st["mean_render_s"] == pytest.approx(12)
    assert (await store.stats(None))["running"] == 1


# ---------------------------------------------------------------- picks, delete, purge

async def rendered_job(store, settings, user=ALICE, frames=3, now=None, deliver=True, guild=G1) -> Job:
    job = await submit(store, user=user, now=now, guild=guild)
    claimed = await store.claim(run("w1"), now=now)
    assert claimed.id == job.id
    files = {f"frame_{i:03d}.png": b"png%d" % i for i in range(frames)}
    await store.artifacts.save(claimed, {**files, "morph.gif": b"GIF89a"})
    await store.mark_rendered(job.id, {"frame_count": frames, "candidates": [0, 1]}, run("w1"), now=now)
    if deliver:
        await store.mark_delivered(job.id, 1000 + job.id, now=now)
    return await store.get(job.id)


async def test_pick_records_and_returns_the_frame(store, settings):
    job = await rendered_job(store, settings)
    picked = await store.pick(job.id, user_id=BOB, frame=2, source="reaction")
    assert picked.data == b"png2" and not picked.repeat
    for bad in (3, -1, "1"):
        with pytest.raises(Refused, match="frames 1 to 3"):
            await store.pick(job.id, user_id=BOB, frame=bad)
    assert [(p["user_id"], p["frame"], p["source"]) for p in await store.picks(job.id)] == [(BOB, 2, "reaction")]
    queued = await submit(store, user=CAROL)
    with pytest.raises(Refused, match="no frames to pick"):
        await store.pick(queued.id, user_id=BOB, frame=0)


async def test_purge_deletes_old_artifacts_and_picks_say_expired(store, settings, clock):
    old = await rendered_job(store, settings, user=ALICE, now=clock.t - 15 * 86400)
    new = await rendered_job(store, settings, user=BOB, now=clock.t - 13 * 86400)
    assert await store.purge() == 1
    assert not await stored(store, old) and await stored(store, new)
    assert (await store.get(old.id)).expired and not (await store.get(new.id)).expired
    with pytest.raises(Refused, match="has expired"):
        await store.pick(old.id, user_id=BOB, frame=0)
    assert (await store.pick(new.id, user_id=BOB, frame=0, now=clock.t + 10)).data == b"png0"
    assert await store.purge() == 0  # idempotent
    assert await store.picks(old.id) == []
    assert await store.purge(now=clock.t + 2 * 86400) == 1
    assert not await stored(store, new)
    # a result still waiting to be posted keeps its files however old it is
    waiting = await rendered_job(store, settings, user=CAROL, now=clock.t - 30 * 86400, deliver=False)
    assert await store.purge() == 0 and await stored(store, waiting)
    await store.mark_delivered(waiting.id, 1)
    assert await store.purge() == 1 and not await stored(store, waiting)


async def test_delete_result(store, settings):
    job = await rendered_job(store, settings, deliver=False)
    with pytest.raises(Refused, match="not yours"):
        await store.delete_result(job.id, actor_id=BOB)
    with pytest.raises(Refused, match="another server"):
        await store.delete_result(job.id, actor_id=ADMIN, admin=True, guild_id=G2)
    assert await stored(store, job)
    j = await store.delete_result(job.id, actor_id=ADMIN, admin=True, guild_id=G1)
    assert j.deleted_at is not None and not await stored(store, job)
    assert await store.jobs_to_deliver() == []  # a deleted result is not posted
    with pytest.raises(Refused, match="expired"):
        await store.pick(job.id, user_id=BOB, frame=0)
    assert (await store.audit_log(G1))[0]["action"] == "delete"


async def test_job_result_roundtrips_as_json(store, settings):
    job = await rendered_job(store, settings)
    row = (await store.db.fetch("SELECT result, request FROM jobs WHERE id = ?", job.id))[0]
    assert json.loads(row["result"]) == job.result
    assert RenderRequest.from_dict(json.loads(row["request"])) == job.request


# ---------------------------------------------------------------- hardening: limits are the operator's ceilings

async def test_operator_settings_are_ceilings_even_when_lowered_later(settings, clock):
    roomy = settings.replace(max_user_active=50, max_guild_queue=5000, max_frames=120, cooldown_s=0)
    s = await Store.open(roomy.db_path, roomy, clock=clock)
    await s.set_limits(G1, ADMIN, max_user_active=50, max_guild_queue=5000, max_frames=120, cooldown_s=0)
    await s.close()
    # the operator tightens the bot's settings: the guild's stored values no longer count
    strict = roomy.replace(max_user_active=2, max_guild_queue=3, max_frames=60, cooldown_s=30)
    store = await Store.open(strict.db_path, strict, clock=clock)
    try:
        limits = await store.get_limits(G1)
        assert (limits.max_user_active, limits.max_guild_queue, limits.max_frames, limits.cooldown_s) == \
            (2, 3, 60, 30.0)
        with pytest.raises(Refused, match="at most 60 on this server"):
            await submit(store, request=req(frames=120))
        await submit(store)
        with pytest.raises(Refused, match="another morph in 30 s"):
            await submit(store, user=ALICE)
        await submit(store, user=ALICE, clock=clock, now=clock.t + 30)
        with pytest.raises(Refused, match="limit is 2"):
            await submit(store, user=ALICE, now=clock.t + 100)
        await submit(store, user=BOB)
        with pytest.raises(Refused, match="limit is 3"):
            await submit(store, user=CAROL)
        # and a server admin cannot loosen them again
        for key, value in (("max_user_active", 3), ("max_guild_queue", 4), ("max_frames", 61)):
            with pytest.raises(Refused, match=f"{key} can be at most"):
                await store.set_limits(G1, ADMIN, **{key: value})
        with pytest.raises(Refused, match="cooldown_s must be at least 30"):
            await store.set_limits(G1, ADMIN, cooldown_s=29)
        assert (await store.set_limits(G1, ADMIN, max_user_active=1)).max_user_active == 1  # stricter is fine
    finally:
        await store.close()


async def test_the_bot_wide_queue_cap_counts_every_guild(settings, clock):
    settings = settings.replace(cooldown_s=0, max_queue=3)
    store = await Store.open(settings.db_path, settings, clock=clock)
    try:
        for user, guild in ((ALICE, G1), (BOB, G2), (CAROL, 3003)):
            await submit(store, user=user, guild=guild)
        await store.claim(run("w1"))  # a rendering job still counts
        with pytest.raises(Refused, match=r"bot's queue is full \(3 morphs"):
            await submit(store, user=44, guild=4004)
        assert await count_jobs(store) == 3
    finally:
        await store.close()


@pytest.mark.slow
async def test_claims_take_turns_across_guilds_3000_jobs_vs_one(settings, clock):
    """The issue's case: server A queued 3,000 jobs; server B's one job must come next, not at 3,001."""
    settings = settings.replace(cooldown_s=0, max_user_active=3000, max_guild_queue=3000, max_queue=5000)
    store = await Store.open(settings.db_path, settings, clock=clock)
    try:
        a = [await submit(store, user=ALICE, guild=G1) for _ in range(3000)]
        first = await store.claim(run("w1"))
        assert first.id == a[0].id
        b = await submit(store, user=BOB, guild=G2)
        assert await store.position(b.id) == 1 and await store.position(a[1].id) == 2
        assert (await store.claim(run("w1"))).id == b.id  # delayed by the one job already rendering, no more
        c1, c2 = await submit(store, user=CAROL, guild=3003), await submit(store, user=CAROL, guild=3003)
        order = [(await store.claim(run("w2"))).id for _ in range(5)]
        assert order == [c1.id, a[1].id, c2.id, a[2].id, a[3].id]
    finally:
        await store.close()


async def test_positions_follow_the_claim_order(store, clock):
    G3 = 3003
    jobs = [await submit(store, user=100 + i, guild=g, clock=clock)
            for i, g in enumerate([G1, G1, G1, G2, G3, G2, G1, G3])]
    await store.claim(run("w1"))
    await store.pause(G3, ADMIN)
    predicted = sorted((pos, j.id) for j, pos, paused in await store.queued_positions() if not paused)
    claimed = []
    while (job := await store.claim(run("w1"))) is not None:
        claimed.append(job.id)
    assert claimed == [job_id for _, job_id in predicted]
    assert len(claimed) == len(jobs) - 1 - 2  # the first claim and G3's two paused jobs


async def test_leaving_a_guild_cancels_its_jobs(store, clock):
    a = await submit(store, clock=clock)
    b = await submit(store, user=BOB, clock=clock)
    other = await submit(store, user=CAROL, guild=G2, clock=clock)
    running = await store.claim(run("w1"))
    cancelled = await store.guild_left(G1)
    assert sorted(j.id for j in cancelled) == [a.id, b.id] and running.id in (a.id, b.id)
    assert {(await store.get(j.id)).state for j in (a, b)} == {"cancelled"}
    assert (await store.get(other.id)).state == "queued"
    assert await store.heartbeat(running.id, run("w1")) == "cancelled"  # the worker stops rendering it
    assert (await store.audit_log(G1))[0]["action"] == "left"
    assert await store.guild_left(G1) == []


async def test_withdrawn_jobs_count_for_no_limit(store, clock):
    job = await submit(store)
    assert await store.withdraw(job.id)
    j = await store.get(job.id)
    assert j.state == "cancelled" and j.withdrawn_at == clock.t
    again = await submit(store)  # no "Slow down": the user never saw the first one
    assert again.state == "queued"
    with pytest.raises(Refused, match="Slow down"):
        await submit(store)  # a job they did see counts as before


async def test_ids_beyond_64_bit_name_no_job(store):
    for big in (2 ** 63, 10 ** 23, 10 ** 40, 0, -1):
        assert await store.get(big) is None
        with pytest.raises(Refused, match=f"There is no morph #{big}"):
            await store.cancel(big, actor_id=ALICE)
        with pytest.raises(Refused, match="no morph"):
            await store.pick(big, user_id=ALICE, frame=0)


# ---------------------------------------------------------------- hardening: picks

async def test_picks_respect_bans_cooldown_and_repeats(store, settings, clock):
    job = await rendered_job(store, settings)
    first = await store.pick(job.id, user_id=BOB, frame=1)
    assert not first.repeat
    with pytest.raises(Refused, match="Slow down: you can pick again in 3 s"):
        await store.pick(job.id, user_id=BOB, frame=2)
    clock.advance(3)
    again = await store.pick(job.id, user_id=BOB, frame=1)
    assert again.repeat and again.data == first.data  # answered privately, not recorded twice
    clock.advance(3)
    await store.pick(job.id, user_id=CAROL, frame=1)  # someone else: no cooldown for them
    await store.ban(G1, CAROL, ADMIN)
    clock.advance(10)
    with pytest.raises(Refused, match="banned"):
        await store.pick(job.id, user_id=CAROL, frame=2)
    assert [(p["user_id"], p["frame"]) for p in await store.picks(job.id)] == [(BOB, 1), (CAROL, 1)]


# ---------------------------------------------------------------- hardening: job identity and files

async def test_jobs_get_random_tokens_and_their_folders_carry_them(store, settings, clock):
    job = await rendered_job(store, settings, user=CAROL, guild=G2)
    a, b = await submit(store, clock=clock), await submit(store, user=BOB, clock=clock)
    assert len({a.token, b.token, job.token}) == 3
    assert all(len(t) == 8 and int(t, 16) >= 0 for t in (a.token, b.token))
    assert a.folder_name == f"{a.id}-{a.token}"
    assert job.artifact_dir == job.folder_name and await stored(store, job)
    if isinstance(settings.db_path, Path):  # files in MORPH_DATA_DIR, in a folder of that name
        assert (settings.data_dir / job.folder_name / "morph.gif").read_bytes() == b"GIF89a"


async def test_came_from_checks_guild_channel_message_and_token(store, settings, clock):
    job = await rendered_job(store, settings)  # delivered as message 1000 + id
    ok = dict(guild_id=G1, channel_id=C1, message_id=1000 + job.id, token=job.token)
    assert job.came_from(**ok)
    for wrong in (dict(guild_id=G2), dict(channel_id=C2), dict(message_id=5), dict(token="deadbeef"),
                  dict(token=None)):
        assert not job.came_from(**{**ok, **wrong}), wrong
    await store.set_status_message(job.id, 7)
    job = await store.get(job.id)
    assert job.came_from(**{**ok, "message_id": 7}, message="status")
    assert not job.came_from(**ok, message="status")  # the result message is not its status message


async def test_settings_paths_are_absolute_so_another_working_directory_finds_the_files(settings, tmp_path,
                                                                                       monkeypatch):
    sqlite_only(settings)
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({"MORPH_DB": "db/m.sqlite3", "MORPH_DATA_DIR": "art"}, dotenv_path=None)
    assert s.db_path == tmp_path / "db" / "m.sqlite3" and s.data_dir == tmp_path / "art"
    store = await Store.open(s.db_path, s)
    try:
        job = await rendered_job(store, s)
        monkeypatch.chdir(tmp_path / "art")  # started from elsewhere later
        assert (await store.pick(job.id, user_id=BOB, frame=0)).data == b"png0"
    finally:
        await store.close()


async def test_purge_removes_orphan_folders_but_nothing_outside_the_data_folder(store, settings, clock):
    sqlite_only(settings)
    job = await rendered_job(store, settings)
    data = settings.data_dir
    orphan = data / "77-deadbeef"  # a render that failed half-way long ago
    orphan.mkdir()
    (orphan / "frame_000.png").write_bytes(b"x")
    fresh = data / "78-cafecafe"  # being written right now by a worker
    fresh.mkdir()
    running = await submit(store, user=BOB, clock=clock)
    await store.claim(run("w1"))
    its_folder = data / running.folder_name
    its_folder.mkdir()
    old = time.time() - 2 * 3600
    for d in (orphan, its_folder):
        os.utime(d, (old, old))
    await store.purge()
    assert not orphan.exists() and fresh.exists() and its_folder.exists() and await stored(store, job)

    # a row pointing outside the data folder (a hand-edited or corrupt database) deletes nothing there
    outside = settings.data_dir.parent / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    await store.db.execute("UPDATE jobs SET artifact_dir = ? WHERE id = ?", "..", job.id)
    await store.purge(now=clock.t + 30 * 86400)
    assert (outside / "keep.txt").read_text() == "keep" and settings.data_dir.is_dir()

"""The worker end to end with the real ``tiny`` model: render → artifacts on disk → store → notifier."""
import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from bot.config import Settings
from bot.store import Store
from bot.worker import (BACKGROUND_NICE, GIL_SWITCH_INTERVAL_S, MIN_GIF_BUDGET, UPLOAD_HEADROOM, Worker,
                        failure_reason, recover_own_jobs)
from morph.request import MorphError, RenderRequest

MiB = 1024 * 1024
G, C, ALICE, BOB = 10, 20, 1, 2


@pytest.fixture(scope="module")
def morpher():
    torch.set_num_threads(1)
    from morph import Morpher

    return Morpher("tiny", device="cpu")


class RecordingNotifier:
    """A real Notifier: remembers every call (name, job id, state, args, time)."""

    def __init__(self, fail_on=()):
        self.calls = []
        self.fail_on = set(fail_on)
        self.changed = asyncio.Event()

    async def _record(self, name, job, *args):
        self.calls.append((name, job.id, job.state, args, time.monotonic()))
        self.changed.set()
        if name in self.fail_on:
            raise RuntimeError(f"notifier {name} broke")

    async def job_started(self, job):
        await self._record("job_started", job)

    async def job_progress(self, job, progress, eta_s):
        await self._record("job_progress", job, progress, eta_s)

    async def job_rendered(self, job):
        await self._record("job_rendered", job)

    async def job_failed(self, job):
        await self._record("job_failed", job)

    def names(self, job_id=None):
        return [c[0] for c in self.calls if job_id is None or c[1] == job_id]

    async def wait_for(self, name, job_id, timeout=30):
        deadline = time.monotonic() + timeout
        while not any(c[0] == name and c[1] == job_id for c in self.calls):
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.monotonic()))


@pytest.fixture
def settings(tmp_path):
    return Settings(db_path=tmp_path / "m.sqlite3", data_dir=tmp_path / "art", cooldown_s=0, max_user_active=10,
                    model="tiny")


@pytest.fixture
async def store(settings):
    s = await Store.open(settings.db_path, settings)
    yield s
    await s.close()


def small(**kw):
    kw = {"frames": 8, "steps": 2, "candidates": 3, "seed": 7, **kw}
    return RenderRequest("a red dog", "a blue cat", **kw)


async def submit(store, request=None, user=ALICE, **kw):
    return await store.enqueue(guild_id=G, channel_id=C, user_id=user, request=request or small(),
                               upload_limit=kw.pop("upload_limit", 10 * MiB), **kw)


def make_worker(store, settings, morpher, notifier, **kw):
    calls = []

    def factory():
        calls.append(threading.current_thread() is threading.main_thread())
        return morpher

    w = Worker(store, factory, settings, notifier, **kw)
    w.factory_calls = calls
    return w


async def test_renders_a_job_to_stored_artifacts(store, settings, morpher):
    notifier = RecordingNotifier()
    worker = make_worker(store, settings, morpher, notifier)
    assert worker.factory_calls == [] and worker.morpher is None  # lazy: nothing loaded yet
    job = await submit(store, upload_limit=8 * MiB)
    assert await worker.run_once() is True
    assert worker.factory_calls == [False]  # created once, in a worker thread

    done = await store.get(job.id)
    assert done.state == "rendered" and done.error is None and done.rendered_at >= done.started_at
    d = Path(settings.data_dir) / job.folder_name
    assert done.artifact_dir == d
    r = done.result
    assert r["frame_count"] == 8 and len(r["ts"]) == 8 and len(r["distances"]) == 7
    assert r["ts"][0] == 0.0 and r["ts"][-1] == 1.0 and r["ts"] == sorted(r["ts"])
    assert len(r["candidates"]) == 3 and r["midpoint"] in range(8) and all(0 <= i < 8 for i in r["candidates"])
    assert r["max_over_mean"] >= 1.0 and 0.0 <= r["one_minus_gini"] <= 1.0
    assert r["seconds"] > 0 and r["model"] == "tiny" and isinstance(r["warnings"], list)
    assert r["gif_reductions"] == [] and r["frame_size"] == [64, 64]

    # the GIF decodes with every frame, within the budget left after the sheet
    gif = Image.open(d / "morph.gif")
    assert gif.format == "GIF" and gif.n_frames == 8 == r["gif_frame_count"]
    assert (d / "morph.gif").stat().st_size == r["gif_bytes"] <= r["gif_budget"]
    assert r["gif_budget"] == 8 * MiB - r["sheet_bytes"] - UPLOAD_HEADROOM
    sheet = Image.open(d / "sheet.png")
    assert sheet.format == "PNG" and sheet.width > sheet.height > 0
    assert (d / "sheet.png").stat().st_size == r["sheet_bytes"]
    frames = sorted(p.name for p in d.glob("frame_*.png"))
    assert frames == [f"frame_{i:03d}.png" for i in range(8)]
    assert Image.open(d / "frame_000.png").size == (64, 64)
    # a pick serves one of those files
    assert (await store.pick(job.id, user_id=BOB, frame=r["candidates"][0])).path.parent == d

    assert notifier.names(job.id)[0] == "job_started" and notifier.names(job.id)[-1] == "job_rendered"
    assert [c[2] for c in notifier.calls if c[0] == "job_rendered"] == ["rendered"]
    assert "job_failed" not in notifier.names()
    assert await worker.run_once() is False  # queue empty
    assert await store.jobs_to_deliver() == [done]


async def test_boomerang_and_tiny_upload_limit(store, settings, morpher):
    worker = make_worker(store, settings, morpher, RecordingNotifier())
    job = await submit(store, small(frames=6), boomerang=True, upload_limit=100)
    await worker.run_once()
    r = (await store.get(job.id)).result
    assert r["gif_frame_count"] == 10 == Image.open(Path(settings.data_dir) / job.folder_name / "morph.gif").n_frames
    assert r["gif_budget"] == MIN_GIF_BUDGET  # never asks the encoder for less than the floor


async def test_render_errors_fail_only_that_job(store, settings, morpher):
    notifier = RecordingNotifier()
    worker = make_worker(store, settings, morpher, notifier, poll_s=0.05)
    bad_engine = await submit(store)
    bad_bug = await submit(store)
    good = await submit(store)
    # Requests the engine refuses at render time (e.g. written by an older version), and one that makes
    # it raise a plain ValueError (not a MorphError): both must fail just their own job.
    await store.conn.execute("UPDATE jobs SET request = json_set(request, '$.scheduler', 'euler_a') WHERE id = ?",
                             (bad_engine.id,))
    await store.conn.execute("UPDATE jobs SET request = json_set(request, '$.guidance', 'abc') WHERE id = ?",
                             (bad_bug.id,))
    await worker.start()
    try:
        await notifier.wait_for("job_rendered", good.id)
    finally:
        await worker.stop()
    j1, j2, j3 = [await store.get(j.id) for j in (bad_engine, bad_bug, good)]
    assert j1.state == "failed" and "fresh noise" in j1.error
    # the engine's own messages are shown; anything else stays in the log (it may carry server paths)
    assert j2.state == "failed" and j2.error == "the renderer failed on the bot's side (the details are in the bot's log)."
    assert j3.state == "rendered"
    assert [c[1] for c in notifier.calls if c[0] == "job_failed"] == [j1.id, j2.id]
    assert [c[2] for c in notifier.calls if c[0] == "job_failed"] == ["failed", "failed"]
    assert not (Path(settings.data_dir) / j1.folder_name).exists()


async def test_model_that_cannot_load_fails_the_job_with_the_reason(store, settings):
    from morph import Morpher

    notifier = RecordingNotifier()
    worker = Worker(store, lambda: Morpher("no-such-org/no-such-model", device="cpu"), settings, notifier)
    job = await submit(store)
    await worker.run_once()
    j = await store.get(job.id)
    assert j.state == "failed" and "no-such-org/no-such-model" in j.error
    assert notifier.names(job.id) == ["job_started", "job_failed"]


def test_failure_reasons():
    assert failure_reason(MorphError("frames must be between 2 and 120")) == "frames must be between 2 and 120"
    assert "ran out of memory" in failure_reason(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert "ran out of memory" in failure_reason(RuntimeError("CUDA error: out of memory"))
    leaky = OSError(5, "Input/output error", "/srv/morph/data/artifacts/7-0badf00d/frame_003.png")
    for err in (KeyError("x"), leaky):
        assert failure_reason(err) == "the renderer failed on the bot's side (the details are in the bot's log)."


async def render_job_in_background(store, settings, morpher, notifier, request, **kw):
    worker = make_worker(store, settings, morpher, notifier, **kw)
    await worker.get_morpher()
    job = await submit(store, request)
    task = asyncio.create_task(worker.run_once())
    await notifier.wait_for("job_progress", job.id)
    return worker, job, task


async def test_cancel_running_job_through_the_worker(store, settings, morpher):
    notifier = RecordingNotifier()
    worker, job, task = await render_job_in_background(store, settings, morpher, notifier,
                                                       small(frames=40, steps=10), progress_interval_s=0.2)
    t0 = time.monotonic()
    assert (await store.cancel(job.id, actor_id=ALICE)).state == "cancelled"
    assert worker.request_cancel(job.id) is True
    await asyncio.wait_for(task, 30)
    print(f"cancel took effect after {time.monotonic() - t0:.2f} s")
    assert time.monotonic() - t0 < 2.0
    j = await store.get(job.id)
    assert j.state == "cancelled" and j.result is None and j.artifact_dir is None
    assert not (Path(settings.data_dir) / job.folder_name).exists()
    assert "job_rendered" not in notifier.names() and "job_failed" not in notifier.names()
    assert worker.request_cancel(job.id) is False  # no longer rendering


async def test_cancel_seen_through_the_database(store, settings, morpher):
    """Another process (or an admin on another bot instance) cancels: the heartbeat notices."""
    notifier = RecordingNotifier()
    worker, job, task = await render_job_in_background(store, settings, morpher, notifier,
                                                       small(frames=40, steps=10), progress_interval_s=0.2)
    other = await Store.open(settings.db_path, settings)
    try:
        await other.cancel(job.id, actor_id=99, admin=True, guild_id=G)
    finally:
        await other.close()
    await asyncio.wait_for(task, 30)
    assert (await store.get(job.id)).state == "cancelled"
    assert "job_rendered" not in notifier.names()


async def test_stop_during_render_puts_the_job_back(store, settings, morpher):
    notifier = RecordingNotifier()
    worker = make_worker(store, settings, morpher, notifier, progress_interval_s=0.2)
    job = await submit(store, small(frames=40, steps=10))
    await worker.start()
    await notifier.wait_for("job_progress", job.id)
    await asyncio.wait_for(worker.stop(), 30)
    j = await store.get(job.id)
    assert j.state == "queued" and j.attempts == 0 and j.worker_id is None


async def test_progress_is_throttled_has_eta_and_loop_stays_responsive(store, settings, morpher):
    """Event-loop lag during a real render: a task sleeps 10 ms in a loop and records the overshoot."""
    notifier = RecordingNotifier(fail_on={"job_started"})  # a broken notifier must not stop the render
    interval = 0.4
    worker = make_worker(store, settings, morpher, notifier, progress_interval_s=interval)
    await worker.get_morpher()
    job = await submit(store, small(frames=16, steps=8))
    lags, stop = [], asyncio.Event()

    async def ticker():
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    tick = asyncio.create_task(ticker())
    t0 = time.monotonic()
    await worker.run_once()
    render_s = time.monotonic() - t0
    stop.set()
    await tick
    max_lag_ms = max(lags) * 1000
    print(f"render {render_s:.2f} s, {len(lags)} ticks, event-loop lag max {max_lag_ms:.1f} ms, "
          f"mean {sum(lags) / len(lags) * 1000:.1f} ms")
    assert (await store.get(job.id)).state == "rendered"
    assert max_lag_ms < 250

    progress = [c for c in notifier.calls if c[0] == "job_progress"]
    assert len(progress) >= 2
    times = [c[4] for c in progress]
    assert all(b - a >= interval - 0.01 for a, b in zip(times, times[1:]))
    fractions = [c[3][0].fraction for c in progress]
    assert fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)
    etas = [c[3][1] for c in progress if c[3][1] is not None]
    assert etas and all(e >= 0 for e in etas) and etas[-1] < render_s


async def test_wake_starts_a_job_without_waiting_for_the_poll(store, settings, morpher):
    notifier = RecordingNotifier()
    worker = make_worker(store, settings, morpher, notifier, poll_s=60)
    await worker.get_morpher()
    await worker.start()
    try:
        await asyncio.sleep(0.1)  # idle, waiting up to 60 s
        job = await submit(store, small(frames=2, steps=1, candidates=1))
        t0 = time.monotonic()
        worker.wake()
        await notifier.wait_for("job_rendered", job.id, timeout=20)
        assert time.monotonic() - t0 < 20
    finally:
        t1 = time.monotonic()
        await asyncio.wait_for(worker.stop(), 30)
    assert time.monotonic() - t1 < 5  # stop() does not wait for the 60 s poll


# ---------------------------------------------------------------- several processes on one database

async def test_a_job_taken_over_by_another_worker_is_dropped_not_cancelled(store, settings, morpher):
    """Process A renders; its job is recovered meanwhile (as a restart of A's id would do). A must notice
    through its heartbeat and let go without cancelling or failing the job; B then renders it."""
    notifier = RecordingNotifier()
    a, job, task = await render_job_in_background(store, settings, morpher, notifier,
                                                  small(frames=40, steps=10), progress_interval_s=0.2)
    assert (await store.get(job.id)).worker_id == a.claim_id and a.claim_id.startswith(a.worker_id + "/")
    other = await Store.open(settings.db_path, settings)
    try:
        assert [j.id for j in await other.recover(worker_id=a.worker_id)] == [job.id]
    finally:
        await other.close()
    await asyncio.wait_for(task, 30)
    j = await store.get(job.id)
    assert j.state == "queued" and j.attempts == 1 and j.worker_id is None
    assert "job_failed" not in notifier.names() and "job_rendered" not in notifier.names()

    b = make_worker(store, settings, morpher, notifier, worker_id="b")
    assert await b.run_once() is True
    j = await store.get(job.id)
    assert j.state == "rendered" and j.worker_id.startswith("b/") and j.artifact_dir.is_dir()


async def test_a_job_taken_over_after_its_render_gets_no_artifacts_here(store, settings, morpher):
    """The render finished (it did not stop at the cancel) but the job was taken over meanwhile: the
    worker drops it before writing into the job's folder, which belongs to the new owner now."""
    taken = threading.Event()

    class FinishesAnyway:
        def render(self, request, progress=None, cancel=None):
            assert taken.wait(30)
            return morpher.render(request, progress=progress, cancel=threading.Event())

    notifier = RecordingNotifier()
    worker = Worker(store, FinishesAnyway, settings, notifier, progress_interval_s=0.2)
    job = await submit(store)
    task = asyncio.create_task(worker.run_once())
    await notifier.wait_for("job_started", job.id)
    assert [j.id for j in await store.recover(worker_id=worker.worker_id)] == [job.id]
    taken.set()
    assert await asyncio.wait_for(task, 30) is True
    j = await store.get(job.id)
    assert j.state == "queued" and j.attempts == 1 and j.worker_id is None
    assert not (Path(settings.data_dir) / job.folder_name).exists()
    assert "job_failed" not in notifier.names() and "job_rendered" not in notifier.names()


async def test_a_restart_takes_back_its_own_dead_jobs_but_not_a_live_twins(store, settings, morpher):
    """Start-up recovery of jobs claimed under this MORPH_WORKER_ID: a previous run that died (heartbeat
    recent but frozen) is taken back; a second live process given the same id keeps its job."""
    notifier = RecordingNotifier()
    twin, job, task = await render_job_in_background(store, settings, morpher, notifier,
                                                     small(frames=40, steps=10), progress_interval_s=0.2)
    dead = await submit(store, user=BOB)
    assert (await store.claim(f"{twin.worker_id}/dead-run")).id == dead.id  # heartbeat now, then nothing
    restarted = await Store.open(settings.db_path, settings)  # the starting process's own connection
    try:
        t0 = time.monotonic()
        recovered = await recover_own_jobs(restarted, twin.worker_id, live_wait_s=0.8)
        assert time.monotonic() - t0 >= 0.8  # it looked twice
    finally:
        await restarted.close()
    assert [(j.id, j.state, j.attempts) for j in recovered] == [(dead.id, "queued", 1)]
    j = await store.get(job.id)
    assert j.state == "running" and j.worker_id == twin.claim_id and j.attempts == 0
    await asyncio.wait_for(task, 60)
    assert (await store.get(job.id)).state == "rendered"  # rendered once, by the twin that had it


async def test_start_up_recovery_does_not_wait_for_old_heartbeats(store, settings):
    old = await submit(store)
    assert (await store.claim("w1/old", now=time.time() - 30)).id == old.id
    t0 = time.monotonic()
    assert [j.id for j in await recover_own_jobs(store, "w1", live_wait_s=5)] == [old.id]
    assert time.monotonic() - t0 < 5


async def test_idle_worker_recovers_only_stale_jobs_of_other_processes(store, settings, morpher):
    notifier = RecordingNotifier()
    dead, alive, done = [await submit(store) for _ in range(3)]
    assert (await store.claim("gone/1", now=time.time() - 300)).id == dead.id
    assert (await store.claim("busy/1")).id == alive.id  # heartbeat just now
    worker = make_worker(store, settings, morpher, notifier)
    assert [j.id for j in await worker.recover_stale()] == [dead.id]
    assert (await store.get(dead.id)).state == "queued" and (await store.get(dead.id)).attempts == 1
    assert (await store.get(alive.id)).state == "running"
    # the worker loop does it by itself (and renders the recovered job)
    await store.conn.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ?", (time.time() - 300, alive.id))
    await store.conn.commit()
    await worker.start()
    try:
        await notifier.wait_for("job_rendered", alive.id, timeout=60)
    finally:
        await worker.stop()
    assert (await store.get(alive.id)).attempts == 1


async def test_heartbeat_covers_model_loading(store, settings, morpher):
    """A slow model load (minutes for real weights) must not look like a dead worker."""
    def slow_factory():
        time.sleep(1.0)
        return morpher

    worker = Worker(store, slow_factory, settings, RecordingNotifier(), progress_interval_s=0.2)
    job = await submit(store, small(frames=2, steps=1, candidates=1))
    task = asyncio.create_task(worker.run_once())
    await asyncio.sleep(0.8)  # still loading
    j = await store.get(job.id)
    assert worker.morpher is None and j.state == "running" and j.heartbeat_at > j.started_at
    await asyncio.wait_for(task, 30)
    assert (await store.get(job.id)).state == "rendered"


async def test_worker_loop_purges_old_artifacts(store, settings, morpher):
    """Retention runs by itself: the worker loop purges on start and then hourly; picks say "expired"."""
    old = await submit(store, small(frames=2, steps=1, candidates=1))
    await store.claim("gone/1")
    folder = Path(settings.data_dir) / old.folder_name
    folder.mkdir(parents=True)
    (folder / "frame_000.png").write_bytes(b"png")
    long_ago = time.time() - (settings.retention_days + 1) * 86400
    assert await store.mark_rendered(old.id, {"frame_count": 2}, folder, now=long_ago)
    assert await store.mark_delivered(old.id, 1)
    worker = make_worker(store, settings, morpher, RecordingNotifier(), poll_s=0.05)
    await worker.start()
    try:
        deadline = time.monotonic() + 10
        while folder.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert not folder.exists() and (await store.get(old.id)).expired
    with pytest.raises(MorphError, match="expired"):
        await store.pick(old.id, user_id=BOB, frame=0)


def _nice() -> int:
    """The calling thread's own nice value (Linux: per thread)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def test_preload_loads_the_model_in_a_thread_of_its_own_before_any_job(store, settings, morpher):
    """At start-up the bot calls preload: the libraries, then the model, load in one thread beside the event
    loop, so the first job does not wait for them."""
    seen = []

    def prepare():
        seen.append(("prepare", threading.current_thread().name, _nice()))

    def factory():
        seen.append(("factory", threading.current_thread().name, _nice()))
        return morpher

    worker = Worker(store, factory, settings, RecordingNotifier())
    await asyncio.wait_for(worker.preload(prepare=prepare), 10)
    assert await worker.get_morpher() is morpher  # no job needed
    assert [(what, thread) for what, thread, _ in seen] == [("prepare", "morph-model-load"),
                                                            ("factory", "morph-model-load")]
    if sys.platform.startswith("linux"):  # below the event loop's priority (nice is per thread there)
        assert {nice for _, _, nice in seen} == {min(19, _nice() + BACKGROUND_NICE)}
    await asyncio.wait_for(worker.preload(), 1)  # idempotent: nothing loads twice
    assert len(seen) == 2
    assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL_S  # the event loop gets the GIL back within 1 ms


async def test_jobs_stay_queued_while_the_model_loads_and_stop_does_not_wait_for_the_load(store, settings,
                                                                                          morpher):
    release = threading.Event()

    def slow_factory():
        release.wait(30)  # a model read from disk: minutes
        return morpher

    worker = Worker(store, slow_factory, settings, RecordingNotifier(), poll_s=0.05)
    worker.preload()
    await worker.start()
    try:
        job = await submit(store)
        worker.wake()
        await asyncio.sleep(0.5)
        j = await store.get(job.id)
        assert (j.state, j.started_at) == ("queued", None)  # shows its queue position, not "rendering"
        await asyncio.wait_for(worker.stop(), 5)  # SIGTERM during the load: no waiting for it
        j = await store.get(job.id)
        assert (j.state, j.attempts) == ("queued", 0)
        release.set()  # the load finishes; started again, the worker renders the job without loading again
        await worker.start()
        deadline = time.monotonic() + 60
        while (await store.get(job.id)).state != "rendered" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert (await store.get(job.id)).state == "rendered"
    finally:
        release.set()
        await worker.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
async def test_renders_run_below_the_event_loops_cpu_priority(store, settings, morpher):
    seen = []

    class Recording:
        def render(self, *args, **kwargs):
            seen.append(_nice())
            return morpher.render(*args, **kwargs)

    worker = Worker(store, lambda: Recording(), settings, RecordingNotifier())
    job = await submit(store, small(frames=2, steps=1, candidates=1))
    assert await worker.run_once() is True
    assert (await store.get(job.id)).state == "rendered"
    assert seen == [min(19, _nice() + BACKGROUND_NICE)]

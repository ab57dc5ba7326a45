"""The render worker: claims jobs from the Store one at a time, renders them in a thread, stores the files.

A worker never talks to Discord: everything it has to say goes into the database (claim, progress and
heartbeat, rendered or failed), and the Discord fronts show it (``bot.delivery``). So it runs inside
``morph-bot`` (the default: one process) or as ``morph-worker`` on any machine that reaches the database.

The event loop never waits on the model or the GPU, and never imports torch: the model loads in a thread
of its own (:meth:`Worker.preload`, at start-up); ``Morpher.render`` and the encoding of the animation (MP4
and/or GIF), the contact sheet and the frames run in the worker's render thread. Both threads run at a lower CPU
priority than the event loop, which must answer Discord within 3 s (:func:`bot.threads.lower_priority`), and hand
the GIL over to it within 1 ms (:data:`bot.threads.GIL_SWITCH_INTERVAL_S`). While a job is processed (model
loading, render, files), a small monitor task writes the progress and the heartbeat to the database (at most
once per ``PROGRESS_INTERVAL_S``) and notices a cancel made through the database (possibly by another process).

Several workers may render from one database. Each claims jobs as its ``worker_id`` (``MORPH_WORKER_ID``,
one per process) and a ``run_id`` new at every start, so:

- a restarted worker takes back at once what its previous run left ``running`` (:func:`recover_own_jobs`),
  except a job whose heartbeat still moves: a live process with the same id renders it (two processes were
  given one ``MORPH_WORKER_ID``);
- every ``RECOVER_INTERVAL_S`` an idle worker recovers jobs of *other* workers whose heartbeat is older
  than ``STALE_S`` (that process died and was not restarted);
- a worker whose job was taken from it that way (``heartbeat`` says ``lost``) drops it without touching
  its state or files.

Times (heartbeats, take-overs) are the database's (``Store.clock``), whatever this machine's clock says.
A database outage never fails a job: a render goes on while the database is away, and what it has to
write afterwards (files, "rendered", a failure, a cancel) is retried until the database is back
(:meth:`Worker._until_written`), counting no attempt; only the job's own errors fail it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from bot import safety
from bot.aio import wait_event
from bot.artifacts import StorageFull
from bot.config import Settings
from bot.db import QUEUE_CHANNEL, DatabaseUnavailable, log_failure
from bot.jobs import Job, JobState
from bot.render_output import failure_reason, free_gpu_memory, render_files
from bot.result import JobProgress
from bot.store import LOST, WorkerRun
from bot.threads import in_daemon_thread, lower_priority, settle_threadsafe, share_gil_quickly
from morph.request import Cancelled, ModelLoadError, MorphError, Progress, RenderResult

if TYPE_CHECKING:  # pragma: no cover
    from bot.artifacts import Artifacts
    from bot.db import Database
    from bot.result import JobResult, SafetyOutcome
    from bot.store import Limits
    from morph.request import RenderRequest

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 2.0
PURGE_INTERVAL_S = 3600.0
#: A running job whose heartbeat (every ``progress_interval_s``, default 2 s) is older than this
#: belongs to a dead process and is put back in the queue by any idle worker.
STALE_S = 60.0
RECOVER_INTERVAL_S = 30.0
#: After a job's files could not be stored for lack of space (it went back to the queue), the worker
#: waits this long before it claims again, instead of rendering the same job into a full disk in a loop.
DISK_FULL_PAUSE_S = 60.0
#: How often a worker whose safety checker could not be loaded tries again (it renders nothing meanwhile).
CHECKER_RETRY_S = 60.0
#: While the database is unavailable, a write the worker must make is tried again after this long (doubling
#: up to :data:`WRITE_RETRY_MAX_S`).
WRITE_RETRY_S, WRITE_RETRY_MAX_S = 0.5, 4.0
#: How often an idle worker looks at the queue by itself. With PostgreSQL a notification wakes it as soon
#: as a job is queued, so the poll is only a safety net; SQLite cannot notify other processes.
POLL_S = {"sqlite": 2.0, "postgres": 30.0}



class WorkerStore(Protocol):
    """What a render worker uses of :class:`bot.store.Store`: claims, heartbeats, the render's outcome,
    recovery and the retention purge, and the job's files."""

    @property
    def db(self) -> Database: ...

    @property
    def artifacts(self) -> Artifacts: ...

    @property
    def clock(self) -> Callable[[], float]: ...

    async def get(self, job_id: int) -> Job | None: ...

    async def running(self, worker_id: str | None = ...) -> list[Job]: ...

    async def claim(self, run: WorkerRun, now: float | None = ...) -> Job | None: ...

    async def heartbeat(self, job_id: int, run: WorkerRun, progress: JobProgress | None = ...,
                        now: float | None = ...) -> JobState | Literal["lost"] | None: ...

    async def mark_rendered(self, job_id: int, result: JobResult, run: WorkerRun, now: float | None = ...,
                            stored_bytes: int | None = ...) -> bool: ...

    async def mark_failed(self, job_id: int, error: str, run: WorkerRun | None = ...,
                          now: float | None = ...) -> bool: ...

    async def mark_cancelled(self, job_id: int, now: float | None = ..., *, states: tuple[str, ...] = ...) -> bool: ...

    async def requeue(self, job_id: int, run: WorkerRun) -> bool: ...

    async def pictures_for_render(self, job: Job, folder: Path) -> RenderRequest: ...

    async def get_limits(self, guild_id: int) -> Limits: ...

    async def set_safety(self, job_id: int, outcome: SafetyOutcome) -> None: ...

    async def mark_withheld(self, job_id: int, outcome: SafetyOutcome, run: WorkerRun,
                            now: float | None = ...) -> bool: ...

    async def recover(self, *, worker_id: str | None = ..., stale_s: float | None = ..., keep: Iterable[int] = ...,
                      now: float | None = ...) -> list[Job]: ...

    async def purge(self, now: float | None = ...) -> int: ...

    async def enforce_storage_budget(self, *, free_bytes: int = ..., now: float | None = ...) -> list[int]: ...

    async def sync_clock(self) -> None: ...


async def recover_own_jobs(store: WorkerStore, worker_id: str,
                           live_wait_s: float = 2.5 * PROGRESS_INTERVAL_S) -> list[Job]:
    """Put back in the queue what earlier runs of ``worker_id`` left ``running``; return the changed jobs.

    We are their restart, so they are taken back at once, not after ``STALE_S``. Unless another live
    process uses the same ``MORPH_WORKER_ID`` (a configuration mistake, e.g. two processes on one host with
    the default id): when such a job's heartbeat is recent, wait ``live_wait_s`` (longer than a heartbeat
    interval) and look again. A job whose heartbeat moved on is being rendered right now: it is left to
    that process and the log says what to fix; taking it would render and post it twice.
    """
    now = store.clock()
    beats = {j.id: j.heartbeat_at for j in await store.running(worker_id)
             if j.heartbeat_at is not None and now - j.heartbeat_at < live_wait_s}
    alive = []
    if beats:
        await asyncio.sleep(live_wait_s)
        alive = [j.id for j in await store.running(worker_id) if j.id in beats and j.heartbeat_at != beats[j.id]]
    if alive:
        log.error("another running process uses MORPH_WORKER_ID=%s and is rendering job(s) %s: left to it. "
                  "Give every process that shares the database its own MORPH_WORKER_ID.",
                  worker_id, ", ".join(f"#{i}" for i in alive))
    return await store.recover(worker_id=worker_id, keep=alive)


class Worker:
    """One render at a time. ``morpher_factory`` is called once, in a thread of its own: when
    :meth:`preload` is called (the bot and ``morph-worker`` do at start-up), else on the first job.
    ``worker_id`` defaults to ``settings.worker_id`` (``MORPH_WORKER_ID``)."""

    def __init__(self, store: WorkerStore, morpher_factory: Callable[[], object], settings: Settings,
                 worker_id: str | None = None, *, poll_s: float | None = None,
                 progress_interval_s: float = PROGRESS_INTERVAL_S,
                 checker_factory: Callable[[], object] | None = None):
        self.store = store
        self.morpher_factory = morpher_factory
        #: loads the image safety checker (in the render thread); None with MORPH_SAFETY=off
        self.checker_factory = (checker_factory if checker_factory is not None
                                else default_checker_factory(settings) if settings.safety else None)
        self.checker = None  # the loaded morph.safety.SafetyChecker
        #: why rendering is blocked: the safety checker could not be loaded (None: not blocked)
        self.safety_error: str | None = None
        self._checker_tried = 0.0  # monotonic
        self.settings = settings
        self.worker_id = settings.worker_id if worker_id is None else worker_id
        #: what this run claims jobs as (see the module docstring)
        self.run = WorkerRun(self.worker_id, secrets.token_hex(4))
        self.poll_s = POLL_S[store.db.dialect] if poll_s is None else poll_s
        self.progress_interval_s = progress_interval_s
        self.disk_full_pause_s = DISK_FULL_PAUSE_S
        self.current: Job | None = None  # the job being rendered, if any
        self._morpher = None
        self._morpher_lock = asyncio.Lock()
        self._loading: asyncio.Future | None = None  # the model load running in its thread
        self._stopped = asyncio.Event()  # set by stop(): ends a wait for the model
        self._executor: ThreadPoolExecutor | None = None  # renders and files (see _in_render_thread)
        self._cancel: dict[int, threading.Event] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._last_purge = 0.0
        self._last_recover = 0.0
        self._disk_full_until = 0.0  # monotonic
        store.db.subscribe(QUEUE_CHANNEL, self.wake)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the background loop (idempotent)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._stopped.clear()
            self._task = asyncio.create_task(self._loop(), name=f"morph-worker-{self.worker_id}")

    async def stop(self) -> None:
        """Stop the loop. A job being rendered is interrupted and put back in the queue (no attempt
        counted), so the next start renders it again."""
        self._stopping = True
        self._stopped.set()
        for ev in self._cancel.values():
            ev.set()
        self._wake.set()
        if self._task is not None:
            try:
                await self._task
            finally:
                self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def wake(self) -> None:
        """Look at the queue now instead of at the next poll (a job may be claimable)."""
        self._wake.set()

    def request_cancel(self, job_id: int) -> bool:
        """Set the cancel flag of a job this worker is rendering; True if it was rendering here. (A cancel
        through the database reaches every worker anyway, within one heartbeat.)"""
        ev = self._cancel.get(job_id)
        if ev is None:
            return False
        ev.set()
        return True

    @property
    def morpher(self):
        """The loaded Morpher, or None before the first job."""
        return self._morpher

    def preload(self, prepare: Callable[[], object] | None = None) -> asyncio.Future:
        """Start loading the model now, in a thread of its own (idempotent); returns a Future that is done
        once ``prepare()``, run first in that thread, has returned (at once without ``prepare``).

        The bot calls it at start-up, so the first job does not wait for the model, and nothing of the load
        runs on the event loop. Its ``prepare`` imports the engine's libraries (torch, diffusers,
        transformers), seconds of Python work that holds the GIL and slowed every answer while it ran, and
        the bot waits for that before it connects; the weights then load while it serves. The thread runs
        at a lower CPU priority (:func:`lower_priority`) and is a daemon: a process stopped during the load
        does not wait for it.
        """
        loop = asyncio.get_running_loop()
        prepared = loop.create_future()
        if self._morpher is not None or self._loading is not None:
            prepared.set_result(None)
            return prepared

        def load():
            lower_priority()
            try:
                if prepare is not None:
                    started = time.monotonic()
                    prepare()
                    log.info("model %s: libraries imported in %.1f s", self.settings.model, time.monotonic() - started)
            finally:
                settle_threadsafe(loop, prepared, None, None)
            started = time.monotonic()
            morpher = self.morpher_factory()
            log.info("model %s loaded in %.1f s", self.settings.model, time.monotonic() - started)
            return morpher

        log.info("loading model %s", self.settings.model)
        share_gil_quickly()
        self._loading = in_daemon_thread(load, name="morph-model-load")
        return prepared

    async def get_morpher(self):
        """The Morpher, once loaded (see :meth:`preload`; started here if nothing loads it yet). A failed
        load raises its error, and the next call loads again. Raises ``Cancelled`` when the worker stops
        first."""
        async with self._morpher_lock:
            if self._morpher is None:
                self.preload()
                loading = self._loading
                assert loading is not None  # preload() started it
                stopped = asyncio.ensure_future(self._stopped.wait())
                try:
                    await asyncio.wait({loading, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopped.cancel()
                if not loading.done():
                    raise Cancelled("the worker stopped while the model was loading")
                self._loading = None
                self._morpher = loading.result()
            return self._morpher

    async def _loop(self) -> None:
        if self._loading is not None:  # the start-up load: jobs wait in the queue (showing their position)
            try:
                await self.get_morpher()
            except Cancelled:
                return
            except Exception as e:  # noqa: BLE001 - the next job loads again, and fails with the reason if it fails again
                log.error("could not load model %s: %s", self.settings.model, e)
        while not self._stopping:
            # Clear before looking at the queue: a wake() (or stop()) from now on is not lost.
            self._wake.clear()
            try:
                await self.store.sync_clock()
                if time.time() - self._last_purge > PURGE_INTERVAL_S:
                    self._last_purge = time.time()
                    await self.store.purge()
                if time.time() - self._last_recover > RECOVER_INTERVAL_S:
                    self._last_recover = time.time()
                    await self.store.recover(stale_s=STALE_S)
                if await self.run_once():
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - a database hiccup must not end the worker
                log_failure(log, f"worker {self.worker_id}: error between jobs", err)
            if self._stopping:
                break
            await wait_event(self._wake, self.poll_s)

    # ------------------------------------------------------------------ one job

    async def ensure_checker(self) -> bool:
        """Whether this worker may render: MORPH_SAFETY=off, or the safety checker is loaded (loaded here,
        in the render thread, at most every ``CHECKER_RETRY_S`` after a failure). A checker that cannot be
        loaded blocks rendering, jobs wait in the queue, and the log and ``/morphadmin stats`` say why: the
        bot never renders unchecked into an ordinary channel."""
        if self.checker_factory is None or self.checker is not None:
            return True
        if self.safety_error is not None and time.monotonic() - self._checker_tried < CHECKER_RETRY_S:
            return False
        self._checker_tried = time.monotonic()
        try:
            self.checker = await self._in_render_thread(self.checker_factory)
        except Exception as e:  # noqa: BLE001 - any failure blocks rendering, with its reason
            self.safety_error = str(e) or type(e).__name__
            log.error("the image safety checker could not be loaded, so this worker renders nothing (jobs wait "
                      "in the queue; retried every %.0f s): %s", CHECKER_RETRY_S, self.safety_error)
            return False
        if self.safety_error is not None:
            log.info("the image safety checker is loaded now; rendering again")
        self.safety_error = None
        return True

    async def run_once(self) -> bool:
        """Claim one job and process it completely (render, files, result); False if none was claimable."""
        if self._stopping or time.monotonic() < self._disk_full_until:
            return False
        if not await self.ensure_checker():
            return False
        job = await self.store.claim(self.run)
        if job is None:
            return False
        await self._process(job)
        return True

    async def _process(self, job: Job) -> None:
        cancel = self._cancel[job.id] = threading.Event()
        self.current = job
        state = _ProgressState()
        # The heartbeat runs from the claim to the end (model loading and files included).
        monitor = asyncio.create_task(self._monitor(job, state, cancel))
        files: dict[str, bytes] = {}
        # a picture morph's pictures (stored with the job) as files for the engine, removed after the render
        pictures = tempfile.mkdtemp(prefix=f"morph-{job.id}-pictures-") if job.request.images else None
        try:
            morpher = await self.get_morpher()
            request = await self.store.pictures_for_render(job, Path(pictures)) if pictures else job.request
            state.render_started = time.monotonic()
            if self.checker is None and not job.channel_nsfw:
                # MORPH_SAFETY=off, and this job was queued for an ordinary channel before that
                await self._until_written(lambda: self.store.mark_failed(job.id, safety.SAFETY_OFF_FAILURE, self.run))
                return
            result: RenderResult = await self._in_render_thread(
                morpher.render, request, progress=state.update, cancel=cancel)
            outcome = await self._check(job, result)
            if outcome is not None and outcome.whole:
                withheld = outcome
                if await self._until_written(lambda: self.store.mark_withheld(job.id, withheld, self.run)):
                    log.info("job #%d withheld by the safety filter (%d of %d frames flagged); no files kept",
                             job.id, len(outcome.flagged), outcome.frame_count)
                return
            if outcome is not None and outcome.withheld:
                result = dataclasses.replace(result, frames=safety.apply(result.frames, outcome))
            files, summary = await self._in_render_thread(render_files, result, job.upload_limit, job.boomerang,
                                                          job.format)
            if outcome is not None:
                checked = outcome
                await self._until_written(lambda: self.store.set_safety(job.id, checked))
            if await self._until_written(lambda: self.store.heartbeat(job.id, self.run)) == LOST:
                # rendered just as another worker took the job over: its files are not ours to write
                log.warning("job #%d finished rendering here but another worker holds it now", job.id)
                return
            await self._until_written(lambda: self.store.artifacts.save(job, files))
            monitor.cancel()
            size = sum(len(data) for data in files.values())
            if not await self._until_written(lambda: self.store.mark_rendered(job.id, summary, self.run,
                                                                              stored_bytes=size)):
                fresh = await self._until_written(lambda: self.store.get(job.id))
                mine = fresh is not None and (fresh.worker_id, fresh.run_id) == tuple(self.run)
                if mine and fresh.state == JobState.RENDERED:  # an earlier try committed; its answer was lost
                    log.info("job #%d rendered in %.1f s", job.id, summary.seconds)
                    return
                if mine:
                    await self.store.artifacts.delete_unclaimed(job)  # cancelled while rendering: keep nothing
                    log.info("job #%d finished rendering but is no longer running; its files are dropped", job.id)
                else:  # recovered by another worker meanwhile: the files are its business now
                    log.warning("job #%d finished rendering here but another worker holds it now", job.id)
                return
            log.info("job #%d rendered in %.1f s", job.id, summary.seconds)
            try:
                await self.store.enforce_storage_budget()
            except Exception as err:  # noqa: BLE001 - the next rendered job tries again
                log_failure(log, "could not enforce the storage budget", err)
        except Cancelled:
            if state.lost:
                log.warning("job #%d was taken over by another worker (stale heartbeat); dropped here", job.id)
            elif self._stopping:
                await self.store.requeue(job.id, self.run)
                log.info("job #%d interrupted by shutdown; back in the queue", job.id)
            else:
                await self._until_written(lambda: self.store.mark_cancelled(job.id))
                log.info("job #%d cancelled", job.id)
        except StorageFull as e:
            # make room: the oldest finished results expire (at least twice what this job needs, at least 64 MiB)
            needed = max(2 * sum(map(len, files.values())), 64 * 2 ** 20)
            try:
                await self.store.enforce_storage_budget(free_bytes=needed)
            except Exception as err:  # noqa: BLE001 - the pause below still comes
                log_failure(log, "could not expire results to make room", err)
            if await self._until_written(lambda: self.store.requeue(job.id, self.run)):
                # Not the job's fault: it waits in the queue, and this worker pauses before the next claim.
                self._disk_full_until = time.monotonic() + self.disk_full_pause_s
                self._last_purge = 0.0  # purge expired results at once: it may free the space
                log.error("job #%d: %s; the job is back in the queue and this worker waits %.0f s before "
                          "rendering again (free space or lower MORPH_RETENTION_DAYS)", job.id, e,
                          self.disk_full_pause_s)
        except DatabaseUnavailable:
            # the worker stopped while the database was away: the job stays running for this worker's id,
            # and its next start (or another worker, after STALE_S) puts it back in the queue
            log.warning("job #%d: the worker stopped before the database came back", job.id)
        except Exception as e:  # noqa: BLE001 - MorphError, out of memory, or a bug: fail this job only (logged)
            await self._fail(job, e)
        finally:
            monitor.cancel()
            if pictures is not None:
                shutil.rmtree(pictures, ignore_errors=True)
            self._cancel.pop(job.id, None)
            self.current = None

    async def _check(self, job: Job, result: RenderResult) -> SafetyOutcome | None:
        """Check every frame (in the render thread) and decide what may be posted (:func:`bot.safety.decide`);
        None without a checker (MORPH_SAFETY=off: only age-restricted channels get jobs then)."""
        if self.checker is None:
            return None
        checker = self.checker
        started = time.monotonic()
        flags = await self._in_render_thread(checker.check_images, result.frames)
        seconds = time.monotonic() - started
        limits = await self._until_written(lambda: self.store.get_limits(job.guild_id))
        outcome = safety.decide(flags, list(result.candidates), result.midpoint,
                                unfiltered=job.channel_nsfw and limits.nsfw_allow, seconds=seconds)
        if outcome.flagged:
            log.info("job #%d: the safety check flagged frame(s) %s of %d (%.2f s)%s", job.id,
                     ", ".join(str(i + 1) for i in outcome.flagged), outcome.frame_count, seconds,
                     "; posted unfiltered (age-restricted channel, allowed)" if outcome.unfiltered else "")
        return outcome

    async def _fail(self, job: Job, e: BaseException) -> None:
        """Mark ``job`` failed with a user-facing reason (details only in the log); a front shows it."""
        if isinstance(e, ModelLoadError):
            log.error("job #%d failed: %s", job.id, e)
        elif isinstance(e, MorphError):
            log.info("job #%d refused by the engine: %s", job.id, e)
        else:
            log.error("job #%d failed", job.id, exc_info=e)
        free_gpu_memory()
        await self._until_written(lambda: self.store.mark_failed(job.id, failure_reason(e), self.run))

    async def _until_written(self, write):
        """``await write()``, tried again while the database is unavailable (an outage holds finished work
        here, it never fails it), until it is back or the worker stops (then DatabaseUnavailable)."""
        delay = WRITE_RETRY_S
        while True:
            try:
                return await write()
            except DatabaseUnavailable:
                if self._stopping:
                    raise
            await wait_event(self._stopped, delay)
            delay = min(delay * 2, WRITE_RETRY_MAX_S)

    async def _in_render_thread(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` in the worker's own thread, at a lower CPU priority (:func:`lower_priority`)."""
        if self._executor is None:
            share_gil_quickly()
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="morph-render",
                                                initializer=lower_priority)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(fn, *args, **kwargs))

    async def _monitor(self, job: Job, state: _ProgressState, cancel: threading.Event) -> None:
        """Runs beside a render: heartbeat with the latest progress and ETA (throttled), and cancel
        requests that arrive through the database."""
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            if now - last_beat < self.progress_interval_s:
                continue
            last_beat = now
            try:
                beat = await self.store.heartbeat(job.id, self.run, progress=state.take(now))
                if beat != JobState.RUNNING:
                    state.lost = state.lost or beat == LOST
                    cancel.set()
            except Exception as err:  # noqa: BLE001 - the render goes on; the next heartbeat tries again
                log_failure(log, f"heartbeat for job #{job.id} failed", err)


def default_checker_factory(settings: Settings) -> Callable[[], object]:
    """Loads :class:`morph.safety.SafetyChecker` for ``MORPH_MODEL`` on the render's device (``MORPH_DEVICE``)."""
    def make():
        from morph.safety import DEFAULT_CHECKER, SafetyChecker, set_default

        fallback, explicit = settings.safety_checker or DEFAULT_CHECKER, settings.safety_checker is not None
        checker = SafetyChecker.load(settings.model, settings.device, fallback=fallback, explicit=explicit)
        # morph.safety.check_images (the check of uploads, bot.safety.upload_check) uses this one too
        set_default(checker, settings.model, fallback, explicit=explicit)
        return checker

    return make


class _ProgressState:
    """Latest Progress, written by the render thread, read by the monitor task (one reference swap)."""

    def __init__(self):
        self.latest: Progress | None = None
        self.sent: Progress | None = None
        self.render_started: float | None = None  # monotonic; after the model is loaded
        self.lost = False  # the job was recovered by another worker (stale heartbeat)

    def update(self, progress: Progress) -> None:
        self.latest = progress

    def take(self, now: float) -> JobProgress | None:
        """The progress to record (with its ETA), or None when nothing new happened since the last one."""
        p = self.latest
        if p is None or p is self.sent:
            return None
        self.sent = p
        elapsed = now - (self.render_started or now)
        eta = elapsed / p.fraction * (1 - p.fraction) if p.fraction > 0.01 else None
        return JobProgress.of(p, eta)



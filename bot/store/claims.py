"""The worker side of the queue: claiming the next job fairly, heartbeats, recovering the jobs of dead
workers, and the render's outcome (rendered, failed, back to the queue)."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal, NamedTuple

from bot.db import JOBS_CHANNEL, QUEUE_CHANNEL
from bot.jobs import Job, JobState, sql_list
from bot.result import JobProgress, JobResult
from bot.store.base import StoreBase, ensure_guild_row, marks

log = logging.getLogger(__name__)

#: Renders of one job that may end in a crash before it is given up (failed).
MAX_ATTEMPTS = 3
#: What :meth:`WorkerClaims.heartbeat` answers when another worker holds the job now.
LOST: Literal["lost"] = "lost"


class WorkerRun(NamedTuple):
    """Who renders a job: the worker (``MORPH_WORKER_ID``) and its run (new at every start)."""

    worker_id: str
    run_id: str


class WorkerClaims(StoreBase):
    """The worker side of :class:`bot.store.Store`."""

    async def claim(self, run: WorkerRun, now: float | None = None) -> Job | None:
        """Atomically move the next queued job of an unpaused guild to ``running`` for ``run``; None if
        nothing is claimable.

        Fair across servers: the next job is the oldest of the guild served longest ago (its
        ``last_claim_seq`` is the lowest; 0 = never), so guilds take turns, one job each, however many one
        of them queued. Claims of all workers take turns too (``Tx.serialize``), so two workers never
        claim one job and every claim sees the previous ones.
        """
        now = self._now(now)
        queued = f"'{JobState.QUEUED}'"
        async with self.db.transaction() as tx:
            await tx.serialize("claims")
            row = await tx.fetchrow(
                f"UPDATE jobs SET state = '{JobState.RUNNING}', started_at = $1, heartbeat_at = $2, worker_id = $3, "
                "run_id = $4, progress = NULL WHERE id = (SELECT j.id FROM jobs j LEFT JOIN guild_settings g ON "
                f"g.guild_id = j.guild_id WHERE j.state = {queued} AND COALESCE(g.paused, 0) = 0 "
                f"ORDER BY COALESCE(g.last_claim_seq, 0), j.id LIMIT 1{self.db.skip_locked}) "
                f"AND state = {queued} RETURNING *", now, now, run.worker_id, run.run_id)
            if row is None:
                return None
            await ensure_guild_row(tx, row["guild_id"])
            await tx.execute("UPDATE guild_settings SET last_claim_seq = "
                             "(SELECT MAX(last_claim_seq) FROM guild_settings) + 1 WHERE guild_id = $1",
                             row["guild_id"])
            tx.notify(JOBS_CHANNEL)
        return self._job(row)

    async def heartbeat(self, job_id: int, run: WorkerRun, progress: JobProgress | None = None,
                        now: float | None = None) -> JobState | Literal["lost"] | None:
        """Record that ``run`` still renders ``job_id`` (and its latest ``progress``, shown by the fronts);
        return the job's state: anything but ``running`` means it was cancelled meanwhile, so the worker
        should stop. :data:`LOST`: the job was recovered (its heartbeat looked stale) and is no longer this
        run's; nothing is written and the worker must drop it without touching it. None: no such job."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            row = await tx.fetchrow("SELECT state, worker_id, run_id FROM jobs WHERE id = $1", job_id)
            if row is None:
                return None
            if (row["worker_id"], row["run_id"]) != tuple(run):
                return LOST
            state = JobState(row["state"])
            if state == JobState.RUNNING:
                if progress is None:
                    await tx.execute("UPDATE jobs SET heartbeat_at = $1 WHERE id = $2", now, job_id)
                else:
                    await tx.execute("UPDATE jobs SET heartbeat_at = $1, progress = $2 WHERE id = $3",
                                     now, progress.to_json(), job_id)
                    tx.notify(JOBS_CHANNEL)
        return state

    async def recover(self, *, worker_id: str | None = None, stale_s: float | None = None,
                      keep: Iterable[int] = (), now: float | None = None) -> list[Job]:
        """Put jobs left ``running`` by a crash back in the queue; return every job it changed.

        Each such job gets ``attempts + 1``; at ``MAX_ATTEMPTS`` it becomes ``failed`` with the reason
        instead (a front then shows it). ``rendered`` jobs are untouched (delivery picks them up). Without
        arguments every running job is recovered (only safe when no other process renders from this
        database). ``worker_id``: only jobs claimed by any run of that worker (a restarted worker takes
        back its own jobs at once); ``stale_s``: only jobs without a heartbeat for that long (another
        process died). ``keep``: ids of jobs to leave running whatever else matches.
        """
        now = self._now(now)
        where = f"state = '{JobState.RUNNING}'"
        params: list[object] = []  # the where clause's, numbered from $1
        if worker_id is not None:
            params.append(worker_id)
            where += f" AND worker_id = ${len(params)}"
        if stale_s is not None:
            params.append(now - stale_s)
            where += f" AND COALESCE(heartbeat_at, started_at, 0) < ${len(params)}"
        kept = [int(i) for i in keep]
        if kept:
            where += f" AND id NOT IN ({marks(kept, first=len(params) + 1)})"
            params += kept
        reason = f"the renderer crashed {MAX_ATTEMPTS} times on this job"
        n = len(params)
        async with self.db.transaction() as tx:
            failed = await tx.fetch(
                f"UPDATE jobs SET attempts = attempts + 1, worker_id = NULL, run_id = NULL, "
                f"state = '{JobState.FAILED}', error = ${n + 1}, finished_at = ${n + 2} WHERE {where} "
                f"AND attempts + 1 >= ${n + 3} RETURNING *", *params, reason, now, MAX_ATTEMPTS)
            requeued = await tx.fetch(
                f"UPDATE jobs SET attempts = attempts + 1, worker_id = NULL, run_id = NULL, "
                f"state = '{JobState.QUEUED}', started_at = NULL, progress = NULL WHERE {where} RETURNING *", *params)
            if failed or requeued:
                tx.notify(QUEUE_CHANNEL)
                tx.notify(JOBS_CHANNEL)
        jobs = sorted(map(self._job, failed + requeued), key=lambda j: j.id)
        for j in jobs:
            log.warning("recovered job #%d -> %s (attempts %d)", j.id, j.state, j.attempts)
        return jobs

    async def running(self, worker_id: str | None = None) -> list[Job]:
        """Running jobs, oldest first (of any run of ``worker_id``, if given)."""
        sql = f"SELECT * FROM jobs WHERE state = '{JobState.RUNNING}'"
        if worker_id is None:
            rows = await self.db.fetch(sql + " ORDER BY id")
        else:
            rows = await self.db.fetch(sql + " AND worker_id = $1 ORDER BY id", worker_id)
        return [self._job(r) for r in rows]

    async def requeue(self, job_id: int, run: WorkerRun) -> bool:
        """Give a running job of ``run`` back to the queue without counting an attempt (clean worker
        shutdown, no room to store its files)."""
        async with self.db.transaction() as tx:
            n = await tx.execute(f"UPDATE jobs SET state = '{JobState.QUEUED}', started_at = NULL, worker_id = NULL, "
                                 f"run_id = NULL, progress = NULL WHERE id = $1 AND state = '{JobState.RUNNING}' AND "
                                 "worker_id = $2 AND run_id = $3", job_id, *run)
            if n:
                tx.notify(QUEUE_CHANNEL)
                tx.notify(JOBS_CHANNEL)
            return n == 1

    async def mark_rendered(self, job_id: int, result: JobResult, run: WorkerRun, now: float | None = None,
                            stored_bytes: int | None = None) -> bool:
        """running → rendered with its result; the job's files (``stored_bytes`` in all) are stored under
        its folder name (see ``bot.artifacts``). The job's uploaded pictures (``/morph-images``) are kept with it
        and count in its stored bytes too (the storage budget). False (nothing changed) when the job is no longer
        running for ``run``: it was cancelled during the render, or another worker holds it now."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            job = await tx.fetchrow("SELECT id, token FROM jobs WHERE id = $1", job_id)
            if job is None:
                return False
            name = f"{job_id}-{job['token']}"  # Job.folder_name
            n = await tx.execute(
                f"UPDATE jobs SET state = '{JobState.RENDERED}', rendered_at = $1, result = $2, artifact_dir = $3, "
                "stored_bytes = CAST($4 AS BIGINT) + (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM uploads WHERE "
                f"job_id = $5), error = NULL, next_delivery_at = NULL WHERE id = $5 AND state = "
                f"'{JobState.RUNNING}' AND worker_id = $6 AND run_id = $7", now, result.to_json(), name, stored_bytes,
                job_id, *run)
            if n:
                tx.notify(JOBS_CHANNEL)
            return n == 1

    async def mark_failed(self, job_id: int, error: str, run: WorkerRun | None = None,
                          now: float | None = None) -> bool:
        """queued/running/rendered → failed with a user-facing reason (a front shows it). False if already
        final (or, with ``run``, if the job is not running for that run any more)."""
        now = self._now(now)
        fail = f"UPDATE jobs SET state = '{JobState.FAILED}', error = $1, finished_at = $2 WHERE id = $3 AND "
        async with self.db.transaction() as tx:
            if run is None:
                unfinished = sql_list((JobState.QUEUED, JobState.RUNNING, JobState.RENDERED))
                n = await tx.execute(fail + f"state IN {unfinished}", error, now, job_id)
            else:
                n = await tx.execute(fail + f"state = '{JobState.RUNNING}' AND worker_id = $4 AND run_id = $5",
                                     error, now, job_id, *run)
            if n:
                tx.notify(JOBS_CHANNEL)
            return n == 1

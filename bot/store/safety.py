"""Content safety in the database: the image check's outcome of a job, the ``withheld`` end state, and
members' reports of results (``/morphadmin reports``; a server may hide a result after N reports). Mixed
into :class:`bot.store.Store`; the policy itself is :mod:`bot.safety`."""
from __future__ import annotations

from typing import NamedTuple

from bot.db import JOBS_CHANNEL
from bot.jobs import JobState, Refusal, Refused
from bot.result import SafetyOutcome
from bot.store.base import StoreBase, audit
from bot.store.claims import WorkerRun


class Report(NamedTuple):
    """What :meth:`ContentSafety.report` did: whether it was this member's first report of the job, how many
    members reported it in all, and whether this report made the job hidden (the caller deletes the message)."""

    new: bool
    reports: int
    hide: bool


class ContentSafety(StoreBase):
    """The content safety side of :class:`bot.store.Store`."""

    async def set_safety(self, job_id: int, outcome: SafetyOutcome) -> None:
        """Record the image check's outcome of a running job (:func:`bot.safety.decide`)."""
        await self.db.execute("UPDATE jobs SET safety = $1 WHERE id = $2", outcome.to_json(), job_id)

    async def mark_withheld(self, job_id: int, outcome: SafetyOutcome, run: WorkerRun,
                            now: float | None = None) -> bool:
        """running → withheld: the safety filter keeps the whole result from its channel. No files are kept
        (none were stored, and a picture morph's uploads are deleted); a front shows it once (like a failure:
        ``failures_to_show``). False when the job is no longer running for ``run``."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            n = await tx.execute(
                f"UPDATE jobs SET state = '{JobState.WITHHELD}', safety = $1, finished_at = $2, "
                f"error = 'withheld by the safety filter' WHERE id = $3 AND state = '{JobState.RUNNING}' "
                "AND worker_id = $4 AND run_id = $5", outcome.to_json(), now, job_id, *run)
            if n:
                # a picture morph's uploads go too: nothing of a withheld job is kept but its row and its audit
                await tx.execute("DELETE FROM uploads WHERE job_id = $1", job_id)
                tx.notify(JOBS_CHANNEL)
            return n == 1

    # ------------------------------------------------------------------ reports
    async def report(self, job_id: int, *, user_id: int, now: float | None = None) -> Report:
        """``user_id`` reports the result of ``job_id`` (once per member; a repeat changes nothing). When the
        guild's ``report_hide_after`` is reached, the job is marked hidden (``hidden_at``) and its files
        deleted; the caller removes the message. Audited."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            await tx.serialize("reports")
            job = await self._job_in_tx(tx, job_id)
            if job.state not in (JobState.RENDERED, JobState.DELIVERED):
                raise Refused(Refusal.NO_RESULT_TO_REPORT, job=job_id)
            new = await tx.fetch("INSERT INTO reports (job_id, guild_id, user_id, created_at) VALUES ($1, $2, $3, $4) "
                                 "ON CONFLICT (job_id, user_id) DO NOTHING RETURNING id",
                                 job_id, job.guild_id, user_id, now)
            count = int(await tx.fetchval("SELECT COUNT(*) FROM reports WHERE job_id = $1", job_id) or 0)
            if not new:
                return Report(False, count, False)
            await audit(tx, job.guild_id, user_id, "report", now, job=job_id, author=job.user_id, count=count)
            limit = await tx.fetchval("SELECT report_hide_after FROM guild_settings WHERE guild_id = $1", job.guild_id)
            hide = limit is not None and count >= int(limit) and job.hidden_at is None
            if hide:
                await tx.execute("UPDATE jobs SET hidden_at = $1, deleted_at = COALESCE(deleted_at, $2), "
                                 "artifacts_purged_at = COALESCE(artifacts_purged_at, $3) WHERE id = $4",
                                 now, now, now, job_id)
                await audit(tx, job.guild_id, 0, "hide", now, job=job_id, author=job.user_id, count=count)
        if hide:
            await self.artifacts.delete(job)
        return Report(True, count, hide)

    async def reports(self, guild_id: int | None, limit: int = 20) -> list[dict]:
        """Reported jobs, the most recently reported first: ``{job_id, user_id (author), reports, last_at,
        hidden, deleted}`` (guild None: every guild)."""
        where, params = ("", []) if guild_id is None else ("WHERE r.guild_id = $1 ", [guild_id])
        rows = await self.db.fetch(
            "SELECT r.job_id, j.user_id, j.result_message_id, j.channel_id, COUNT(*) AS reports, "
            "MAX(r.created_at) AS last_at, j.hidden_at, j.deleted_at FROM reports r JOIN jobs j ON j.id = r.job_id "
            f"{where}GROUP BY r.job_id, j.user_id, j.result_message_id, j.channel_id, j.hidden_at, j.deleted_at "
            f"ORDER BY last_at DESC LIMIT ${len(params) + 1}", *params, limit)
        return [{**r, "hidden": r["hidden_at"] is not None, "deleted": r["deleted_at"] is not None} for r in rows]

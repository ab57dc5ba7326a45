"""Rendered results: picking a frame, deleting a result (❌), and the retention purge of old files."""
from __future__ import annotations

import logging

from bot.jobs import ACTIVE_STATES, Expired, Job, JobState, Pick, Refusal, Refused, sql_list
from bot.safety import withheld_frames
from bot.store.base import StoreBase, audit, check_may_act, marks
from morph.output import frame_filename

log = logging.getLogger(__name__)

#: Interactions remembered for de-duplication (Discord never repeats one after its token expired).
INTERACTION_MEMORY_S = 3600.0
#: Rows of finished jobs (with their picks) and audit entries are deleted once they are this many times
#: ``MORPH_RETENTION_DAYS`` old: the files go after one retention period, and for another one a pick of
#: such a result still answers "expired" instead of "there is no morph". Bans and server settings stay.
ROW_RETENTION_FACTOR = 2
#: ...but never younger than a day (cooldowns and limits look at recent jobs), whatever the retention.
ROW_MIN_KEEP_S = 86400.0


class Results(StoreBase):
    """The results side of :class:`bot.store.Store`."""

    async def pick(self, job_id: int, *, user_id: int, frame: int, source: str = "button",
                   now: float | None = None) -> Pick:
        """Record that ``user_id`` picked ``frame`` (0-based); return that frame's PNG and whether the same
        person had already picked the same frame (``repeat``: answer privately, not again in public;
        nothing is recorded).

        Refuses an unknown job, a user banned in the job's guild, one not rendered yet, an expired/deleted
        one ("this morph has expired"), a frame out of range, and a pick within ``MORPH_PICK_COOLDOWN_S`` of
        the same person's previous pick in that guild (buttons, menu and reactions together).
        """
        now = self._now(now)
        async with self.db.transaction() as tx:
            await tx.serialize("picks")
            job = await self._job_in_tx(tx, job_id)
            if await tx.fetch("SELECT 1 FROM bans WHERE guild_id = $1 AND user_id = $2", job.guild_id, user_id):
                raise Refused(Refusal.BANNED)
            self._check_frame(job, frame)
            last = await tx.fetchval("SELECT MAX(p.created_at) FROM picks p JOIN jobs j ON j.id = p.job_id "
                                     "WHERE p.user_id = $1 AND j.guild_id = $2", user_id, job.guild_id)
            wait = self.settings.pick_cooldown_s - (now - last) if last is not None else 0
            if wait > 0:
                raise Refused(Refusal.PICK_COOLDOWN, seconds=max(1, round(wait)))
            new = await tx.fetch("INSERT INTO picks (job_id, user_id, frame, source, created_at) "
                                 "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, user_id, frame) DO NOTHING "
                                 "RETURNING id",
                                 job_id, user_id, frame, source, now)
        data = await self.artifacts.read(job, frame_filename(frame))
        if data is None:
            raise Expired(Refusal.EXPIRED, job=job.id)
        return Pick(data, repeat=not new)

    def _check_frame(self, job: Job, frame: int) -> None:
        if job.deleted_at is not None or job.expired:
            raise Expired(Refusal.EXPIRED_RETENTION, job=job.id, days=self.settings.retention_days)
        if job.state not in (JobState.RENDERED, JobState.DELIVERED) or not job.result or job.artifact_dir is None:
            raise Refused(Refusal.NO_FRAMES, job=job.id, state=str(job.state))
        count = job.result.frame_count
        # only the frames a result offers are stored (its buttons and menu; see bot.render_output)
        if isinstance(frame, bool) or not isinstance(frame, int) or frame not in job.result.pickable_frames:
            shown = frame + 1 if isinstance(frame, int) else frame
            raise Refused(Refusal.NO_SUCH_FRAME, job=job.id, count=count, frame=shown)
        if frame in withheld_frames(job.safety):
            raise Refused(Refusal.WITHHELD_FRAME, job=job.id, frame=frame + 1)

    async def pick_posted(self, job_id: int, *, user_id: int, frame: int, message_id: int) -> None:
        """The pick of ``frame`` by ``user_id`` was posted as ``message_id``: deleting or hiding the result
        removes that message too (:meth:`pick_messages`)."""
        await self.db.execute("UPDATE picks SET message_id = $1 WHERE job_id = $2 AND user_id = $3 AND frame = $4",
                              message_id, job_id, user_id, frame)

    async def pick_messages(self, job_id: int) -> list[int]:
        """The messages the job's picks were posted as, oldest first."""
        rows = await self.db.fetch("SELECT message_id FROM picks WHERE job_id = $1 AND message_id IS NOT NULL "
                                   "ORDER BY id", job_id)
        return [int(r["message_id"]) for r in rows]

    async def picks(self, job_id: int) -> list[dict]:
        """Every pick of the job, oldest first: ``{user_id, frame, source, created_at}``."""
        return await self.db.fetch("SELECT user_id, frame, source, created_at FROM picks WHERE job_id = $1 "
                                   "ORDER BY id", job_id)

    async def delete_result(self, job_id: int, *, actor_id: int, admin: bool = False,
                            guild_id: int | None = None, now: float | None = None) -> Job:
        """The ❌ button: author or admin (of ``guild_id``) deletes a rendered/delivered result's files.

        The row stays (state unchanged) with ``deleted_at`` set; picks then answer "expired". The
        caller deletes the Discord message. Admin deletes are audited.
        """
        now = self._now(now)
        async with self.db.transaction() as tx:
            job = await self._job_in_tx(tx, job_id)
            check_may_act(job, actor_id, admin, guild_id, "delete")
            if job.deleted_at is not None:
                raise Refused(Refusal.ALREADY_DELETED, job=job_id)
            await tx.execute("UPDATE jobs SET deleted_at = $1, artifacts_purged_at = COALESCE(artifacts_purged_at, $2) "
                             "WHERE id = $3", now, now, job_id)
            await tx.execute("DELETE FROM uploads WHERE job_id = $1", job_id)
            if admin:
                await audit(tx, job.guild_id, actor_id, "delete", now, job=job_id, author=job.user_id)
            job = await self._job_in_tx(tx, job_id)
        await self.artifacts.delete(job)
        return job

    async def enforce_storage_budget(self, *, free_bytes: int = 0, now: float | None = None) -> list[int]:
        """Expire the oldest finished results (delivered, failed, cancelled; their picks then answer
        "expired", as after the retention) until everything stored fits ``MORPH_STORAGE_MAX_GB`` and each
        server's results fit its ``MORPH_STORAGE_GUILD_SHARE`` of it, and, with ``free_bytes`` (a full disk),
        until at least that much more was freed. Results still waiting to be posted are never expired. A result's
        stored bytes include its uploaded pictures, which are deleted with it. Returns the ids of the expired
        jobs."""
        now = self._now(now)
        budget = int(self.settings.storage_max_gb * 1024 ** 3)
        if budget <= 0 and free_bytes <= 0:
            return []
        share = int(budget * self.settings.storage_guild_share)
        final = (JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED)
        stored = "FROM jobs WHERE artifact_dir IS NOT NULL AND artifacts_purged_at IS NULL"
        if free_bytes <= 0:  # after every render: one cheap read, and no write transaction while within budget
            sums = (await self.db.fetch(
                "SELECT COALESCE(SUM(s), 0) AS total, COALESCE(MAX(s), 0) AS largest FROM "
                f"(SELECT SUM(COALESCE(stored_bytes, 0)) AS s {stored} GROUP BY guild_id) AS per_guild"))[0]
            if int(sums["total"]) <= budget and int(sums["largest"]) <= share:
                return []
        async with self.db.transaction() as tx:
            rows = await tx.fetch(f"SELECT id, guild_id, state, stored_bytes {stored} "
                                  "ORDER BY COALESCE(rendered_at, created_at), id")
            total = sum(r["stored_bytes"] or 0 for r in rows)
            per_guild: dict[int, int] = {}
            for r in rows:
                per_guild[r["guild_id"]] = per_guild.get(r["guild_id"], 0) + (r["stored_bytes"] or 0)
            evicted, freed = [], 0
            for r in rows:
                size, guild = r["stored_bytes"] or 0, r["guild_id"]
                over = budget > 0 and (total > budget or per_guild[guild] > share)
                if r["state"] not in final or not (over or freed < free_bytes):
                    continue
                evicted.append(r)
                total, freed, per_guild[guild] = total - size, freed + size, per_guild[guild] - size
            expired = await tx.fetch("UPDATE jobs SET artifacts_purged_at = $1 WHERE id IN "
                                     f"({marks(evicted, first=2)}) RETURNING *", now,
                                     *(r["id"] for r in evicted)) if evicted else []
            if evicted:  # uploaded pictures count in a result's stored bytes and go with it
                await tx.execute(f"DELETE FROM uploads WHERE job_id IN ({marks(evicted)})", *(r["id"] for r in evicted))
        for r in expired:  # files after the commit, as in purge
            await self.artifacts.delete(self._job(r))
        if evicted:
            log.info("storage budget: expired the %d oldest result(s), %.1f MiB", len(evicted), freed / 2 ** 20)
        return [r["id"] for r in evicted]

    async def set_storage_full(self, worker_id: str, needed: int, retry_at: float | None,
                               now: float | None = None) -> None:
        """Record that ``worker_id`` could not store a job's files (``needed`` bytes) and renders nothing until
        there is room (``retry_at``: when it tries anyway, where the room cannot be measured); shown by
        ``/morphadmin stats``. ``since`` stays that of the first failure."""
        now = self._now(now)
        await self.db.execute("INSERT INTO storage_full (worker_id, since, needed, retry_at) VALUES ($1, $2, $3, $4) "
                              "ON CONFLICT (worker_id) DO UPDATE SET needed = excluded.needed, "
                              "retry_at = excluded.retry_at", worker_id, now, int(needed), retry_at)

    async def clear_storage_full(self, worker_id: str) -> None:
        """``worker_id`` stored a job's files again."""
        await self.db.execute("DELETE FROM storage_full WHERE worker_id = $1", worker_id)

    async def storage_full(self) -> list[dict]:
        """Workers waiting for room to store results: ``{worker_id, since, needed, retry_at}``, oldest first."""
        return await self.db.fetch("SELECT * FROM storage_full ORDER BY since, worker_id")

    async def purge(self, now: float | None = None) -> int:
        """Delete the files of jobs older than ``retention_days`` (by render time, else creation time) and
        mark them expired; return how many jobs were purged. Rows are kept. Jobs still waiting for delivery
        (``rendered``) keep their files. Files no job points to (a render that failed half-way, a crash)
        are removed too, and interactions too old to be repeated are forgotten. Uploaded pictures
        (``/morph-images``) go with their job's files, or at the same age for a failed or cancelled job. Rows go
        later (:data:`ROW_RETENTION_FACTOR`): finished jobs whose files are gone, with their picks, and audit
        entries; bans and server settings are kept."""
        now = self._now(now)
        cutoff = now - self.settings.retention_days * 86400
        unfinished = sql_list((*ACTIVE_STATES, JobState.RENDERED))
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE jobs SET artifacts_purged_at = $1 WHERE artifact_dir IS NOT NULL AND artifacts_purged_at IS "
                f"NULL AND state NOT IN {unfinished} AND COALESCE(rendered_at, created_at) < $2 RETURNING *",
                now, cutoff)
            kept = {r["artifact_dir"] or self._job(r).folder_name for r in await tx.fetch(
                f"SELECT * FROM jobs WHERE state = '{JobState.RUNNING}' OR (artifact_dir IS NOT NULL AND "
                "artifacts_purged_at IS NULL)")}
            await tx.execute("DELETE FROM interactions WHERE handled_at < $1", now - INTERACTION_MEMORY_S)
            # uploaded pictures go with their job's files, or at the same age when the job made none
            await tx.execute(
                "DELETE FROM uploads WHERE job_id IN (SELECT id FROM jobs WHERE artifacts_purged_at IS NOT NULL OR "
                f"(state IN {sql_list((JobState.FAILED, JobState.CANCELLED, JobState.WITHHELD))} AND "
                "COALESCE(finished_at, created_at) < $1))", cutoff)
            row_cutoff = now - max(ROW_RETENTION_FACTOR * self.settings.retention_days * 86400, ROW_MIN_KEEP_S)
            final = sql_list((JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED, JobState.WITHHELD))
            pruned = await tx.execute(
                f"DELETE FROM jobs WHERE state IN {final} AND (artifact_dir IS NULL OR artifacts_purged_at IS NOT "
                "NULL) AND COALESCE(delivered_at, finished_at, rendered_at, created_at) < $1", row_cutoff)
            pruned += await tx.execute("DELETE FROM picks WHERE created_at < $1", row_cutoff)
            pruned += await tx.execute("DELETE FROM audit_log WHERE created_at < $1", row_cutoff)
        for r in rows:  # files after the commit: a crash here leaves files, never a row pointing at nothing
            await self.artifacts.delete(self._job(r))
        orphans = await self.artifacts.purge_orphans(kept)
        if rows or orphans or pruned:
            log.info("purged the files of %d job(s) and %d left-over file set(s); %d old row(s) deleted", len(rows),
                     orphans, pruned)
        return len(rows)

"""The front side of the queue: taking rendered jobs to post them (with retries and a lease, so one front
posts each), and taking failures to tell Discord about them once."""
from __future__ import annotations

from bot.jobs import Job, JobState
from bot.store.base import StoreBase

#: A front that takes a rendered job to post it holds it this long; if it dies meanwhile, another front
#: (or its restart) posts it afterwards (duplicates are caught by the message nonce and history check).
DELIVERY_LEASE_S = 30.0

RENDERED = f"'{JobState.RENDERED}'"


class ResultPosting(StoreBase):
    """The posting side of :class:`bot.store.Store` (``bot.delivery`` uses it)."""

    async def jobs_to_deliver(self, now: float | None = None, *, ignore_backoff: bool = False) -> list[Job]:
        """Rendered (not deleted) jobs whose next delivery attempt is due, oldest first; with
        ``ignore_backoff`` every one of them, whatever its retry time or lease (a front starting up: the
        process that was posting them, its previous run, is gone)."""
        now = self._now(now)
        due = "" if ignore_backoff else " AND (next_delivery_at IS NULL OR next_delivery_at <= $1)"
        rows = await self.db.fetch(f"SELECT * FROM jobs WHERE state = {RENDERED} AND deleted_at IS NULL{due} "
                                   "ORDER BY id", *(() if ignore_backoff else (now,)))
        return [self._job(r) for r in rows]

    async def next_retry_at(self, now: float | None = None) -> float | None:
        """The earliest delivery retry still to come of a rendered job, or None."""
        return await self.db.fetchval(f"SELECT MIN(next_delivery_at) FROM jobs WHERE state = {RENDERED} AND "
                                      "deleted_at IS NULL AND next_delivery_at > $1", self._now(now))

    async def take_delivery(self, job_id: int, *, force: bool = False, now: float | None = None) -> Job | None:
        """Take a due rendered job to post it (every front of its shard looks for them): the job, or None
        when another front took it first. The taker holds it for ``DELIVERY_LEASE_S``; ``force`` takes it
        whatever its retry time or lease (a restarted front whose previous run was posting it)."""
        now = self._now(now)
        due = float("inf") if force else now
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(f"UPDATE jobs SET next_delivery_at = $1 WHERE id = $2 AND state = {RENDERED} AND "
                                    "deleted_at IS NULL AND (next_delivery_at IS NULL OR next_delivery_at <= $3) "
                                    "RETURNING *", now + DELIVERY_LEASE_S, job_id, due)
        return self._job(row) if row else None

    async def mark_delivered(self, job_id: int, message_id: int | None, now: float | None = None) -> bool:
        """rendered → delivered, remembering the result message (and forgetting any failed attempt's
        error). False if it was not ``rendered``."""
        now = self._now(now)
        return await self.db.execute(
            f"UPDATE jobs SET state = '{JobState.DELIVERED}', delivered_at = $1, result_message_id = $2, "
            f"next_delivery_at = NULL, error = NULL WHERE id = $3 AND state = {RENDERED}", now, message_id, job_id) == 1

    async def delivery_failed(self, job_id: int, error: str, retry_in: float | None,
                              now: float | None = None) -> Job:
        """Record a failed delivery: retry after ``retry_in`` seconds, or (None) give up → failed."""
        now = self._now(now)
        async with self.db.transaction() as tx:
            if retry_in is None:
                await tx.execute(f"UPDATE jobs SET state = '{JobState.FAILED}', error = $1, finished_at = $2, "
                                 f"delivery_attempts = delivery_attempts + 1 WHERE id = $3 AND state = {RENDERED}",
                                 error, now, job_id)
            else:
                await tx.execute("UPDATE jobs SET error = $1, next_delivery_at = $2, delivery_attempts = "
                                 f"delivery_attempts + 1 WHERE id = $3 AND state = {RENDERED}",
                                 error, now + retry_in, job_id)
            return await self._job_in_tx(tx, job_id)

    async def failures_to_show(self) -> list[Job]:
        """Failed and withheld jobs no front has told Discord about yet, oldest first."""
        rows = await self.db.fetch(f"SELECT * FROM jobs WHERE state IN ('{JobState.FAILED}', '{JobState.WITHHELD}') "
                                   "AND failure_shown_at IS NULL ORDER BY id")
        return [self._job(r) for r in rows]

    async def take_failure(self, job_id: int, now: float | None = None) -> bool:
        """True for the one front that shows this failure (every front looks for them)."""
        return await self.db.execute("UPDATE jobs SET failure_shown_at = $1 WHERE id = $2 AND failure_shown_at IS NULL",
                                     self._now(now), job_id) == 1

"""The pictures of ``/morph-images`` jobs (the ``uploads`` table, migration 0008): written in the transaction
that queues the job (:meth:`bot.store.queue.JobQueue.enqueue` calls :func:`save_uploads`), so a worker never
claims a picture morph whose pictures are missing; read by the worker that renders it
(:meth:`PictureUploads.pictures_for_render`); removed with the job's files (retention purge, ❌ delete).

Uploads never cross servers: a refine or reroll copies its pictures from the job it starts from only when
that job belongs to the same server (:func:`save_uploads`), and only the worker rendering a job reads them.
"""
from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from pathlib import Path

from bot.db.base import Tx
from bot.jobs import Job, Refusal, Refused
from bot.store.base import StoreBase
from morph.request import RenderRequest

#: The ends, as messages name them.
SLOT_NAMES = ("first", "second")


def picture_slots(request: RenderRequest) -> list[int]:
    """The ends of ``request`` that are pictures (0 first, 1 second)."""
    return [i for i, image in enumerate(request.images or []) if image is not None]


async def save_uploads(tx: Tx, job_id: int, guild_id: int, request: RenderRequest,
                       uploads: Mapping[int, bytes] | None, uploads_from: int | None) -> None:
    """Store the pictures of the new job ``job_id``: ``uploads`` (end → file bytes, already checked), or a copy
    of job ``uploads_from``'s when that job is in the same guild. Raises Refused (the caller's transaction
    then queues nothing) when a picture end of ``request`` gets no picture."""
    slots = picture_slots(request)
    if not slots:
        return
    if uploads:
        for slot in slots:
            if slot in uploads:
                await tx.execute("INSERT INTO uploads (job_id, slot, data) VALUES ($1, $2, $3)", job_id, slot,
                                 bytes(uploads[slot]))
    elif uploads_from is not None:
        await tx.execute("INSERT INTO uploads (job_id, slot, data) SELECT $1, u.slot, u.data FROM uploads u "
                         "JOIN jobs j ON j.id = u.job_id WHERE u.job_id = $2 AND j.guild_id = $3",
                         job_id, uploads_from, guild_id)
    stored = {r["slot"] for r in await tx.fetch("SELECT slot FROM uploads WHERE job_id = $1", job_id)}
    if not set(slots) <= stored:
        raise Refused(Refusal.PICTURES_GONE, job=uploads_from)


class PictureUploads(StoreBase):
    """The uploads side of :class:`bot.store.Store`."""

    async def uploads(self, job_id: int) -> dict[int, bytes]:
        """The job's pictures by end (0 first, 1 second)."""
        rows = await self.db.fetch("SELECT slot, data FROM uploads WHERE job_id = $1 ORDER BY slot", job_id)
        return {int(r["slot"]): bytes(r["data"]) for r in rows}

    async def pictures_for_render(self, job: Job, folder: Path) -> RenderRequest:
        """``job.request`` with its picture ends pointing at the job's pictures, written into ``folder`` (the
        worker's own, removed after the render). Whatever ``images`` the stored request names, only the
        job's own uploads are read. Raises Refused (PICTURES_GONE) when they are gone."""
        request = job.request
        slots = picture_slots(request)
        if not slots:
            return request
        data = await self.uploads(job.id)
        images: list[str | None] = [None] * len(request.images)
        for slot in slots:
            if slot not in data:
                raise Refused(Refusal.PICTURES_GONE, job=job.id)
            path = Path(folder) / f"{SLOT_NAMES[slot]}-picture"
            await asyncio.to_thread(path.write_bytes, data[slot])
            images[slot] = str(path)
        return dataclasses.replace(request, images=images)

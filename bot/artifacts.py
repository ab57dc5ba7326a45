"""Where a rendered job's files live: the MP4 and/or GIF, the contact sheet and every frame as PNG.

- :class:`FolderArtifacts` (SQLite, the default): a folder per job in ``MORPH_DATA_DIR``, named
  ``<job>-<token>`` so folders of different databases never collide. Only processes on this machine (or
  sharing that folder) can serve them.
- :class:`DatabaseArtifacts` (PostgreSQL): rows of the ``artifacts`` table, so a render worker on another
  machine needs nothing but the database URL, and every front can serve every pick.

Both save a job's files all or nothing: a failed save leaves nothing behind. :class:`StorageFull` means
there was no room (the job goes back to the queue instead of failing).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import shutil
import time
from pathlib import Path
from typing import Protocol

from bot.jobs import Job, JobState, sql_list

log = logging.getLogger(__name__)

GIF_FILE, MP4_FILE, SHEET_FILE = "morph.gif", "morph.mp4", "sheet.png"
#: A folder no job points to is removed by the purge once it is this old (a worker may be writing a fresh
#: one right now; its job points to it only once the render is recorded).
ORPHAN_GRACE_S = 3600.0


class Artifacts(Protocol):
    """What the Store's consumers do with a job's files (:class:`FolderArtifacts`, :class:`DatabaseArtifacts`)."""

    async def save(self, job: Job, files: dict[str, bytes]) -> None: ...

    async def read(self, job: Job, name: str) -> bytes | None: ...

    async def delete(self, job: Job) -> None: ...

    async def delete_unclaimed(self, job: Job) -> None: ...

    async def purge_orphans(self, kept: set[str]) -> int: ...

    def free_bytes(self) -> int | None: ...


class StorageFull(OSError):
    """No room left to store a job's files (disk full, database out of space)."""


class FolderArtifacts:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, job: Job) -> Path:
        return self.root / (job.artifact_dir or job.folder_name)

    def free_bytes(self) -> int | None:
        """Room left on the file system of the folder (of its nearest existing parent before the first save)."""
        folder = self.root
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            return None

    async def save(self, job: Job, files: dict[str, bytes]) -> None:
        await asyncio.to_thread(self._save, self.root / job.folder_name, files)

    @staticmethod
    def _save(folder: Path, files: dict[str, bytes]) -> None:
        if folder.exists():  # a previous attempt that crashed half-way
            shutil.rmtree(folder)
        try:
            folder.mkdir(parents=True)
            for name, data in files.items():
                (folder / name).write_bytes(data)
        except BaseException as e:
            shutil.rmtree(folder, ignore_errors=True)  # no half-written folder is left behind
            if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                raise StorageFull(e.errno, f"no space left in {folder.parent}") from e
            raise

    async def read(self, job: Job, name: str) -> bytes | None:
        if job.artifact_dir is None:
            return None
        try:
            return await asyncio.to_thread((self.path(job) / name).read_bytes)
        except FileNotFoundError:
            return None

    # Deleting a folder of up to 120 frames takes a while on a slow disk: in a thread, never on the event loop.
    async def delete(self, job: Job) -> None:
        await asyncio.to_thread(self._remove, self.path(job))

    async def delete_unclaimed(self, job: Job) -> None:
        """Delete what a worker saved for ``job`` before its render was recorded (then given up)."""
        await asyncio.to_thread(self._remove, self.root / job.folder_name)

    async def purge_orphans(self, kept: set[str]) -> int:
        """Remove folders that no job in ``kept`` (folder names) points to and that are old enough."""
        return await asyncio.to_thread(self._purge_orphans, kept)

    def _purge_orphans(self, kept: set[str]) -> int:
        try:
            folders = [d for d in self.root.iterdir() if d.is_dir() and not d.is_symlink()]
        except FileNotFoundError:
            return 0
        orphans = [d for d in folders if d.name not in kept and time.time() - d.stat().st_mtime > ORPHAN_GRACE_S]
        for d in orphans:
            self._remove(d)
        return len(orphans)

    def _remove(self, path: Path) -> None:
        """Delete a job's folder, but never anything outside ``MORPH_DATA_DIR`` (nor that folder)."""
        root, target = self.root.resolve(), Path(path).resolve()
        if target == root or not target.is_relative_to(root):
            log.error("refusing to delete %s: it is not inside the data folder %s", target, root)
            return
        shutil.rmtree(target, ignore_errors=True)


class DatabaseArtifacts:
    def __init__(self, db) -> None:
        self.db = db

    async def save(self, job: Job, files: dict[str, bytes]) -> None:
        import asyncpg

        try:
            async with self.db.transaction() as tx:
                await tx.execute("DELETE FROM artifacts WHERE job_id = $1", job.id)
                for name, data in files.items():
                    await tx.execute("INSERT INTO artifacts (job_id, name, data) VALUES ($1, $2, $3)",
                                     job.id, name, data)
        except (asyncpg.DiskFullError, asyncpg.OutOfMemoryError) as e:
            raise StorageFull(errno.ENOSPC, f"the database {self.db.name} has no room: {e}") from e

    async def read(self, job: Job, name: str) -> bytes | None:
        rows = await self.db.fetch("SELECT data FROM artifacts WHERE job_id = $1 AND name = $2", job.id, name)
        return bytes(rows[0]["data"]) if rows else None

    async def delete(self, job: Job) -> None:
        await self.db.execute("DELETE FROM artifacts WHERE job_id = $1", job.id)

    delete_unclaimed = delete

    def free_bytes(self) -> int | None:
        """Unknown: the room a database has is its server's business."""
        return None

    async def purge_orphans(self, kept: set[str]) -> int:
        """Files of jobs whose results are gone or were never recorded (cancelled, failed); a save is one
        transaction, so nothing half-written is ever left."""
        return await self.db.execute(
            "DELETE FROM artifacts WHERE job_id IN (SELECT id FROM jobs WHERE artifacts_purged_at IS NOT NULL "
            f"OR state IN {sql_list((JobState.FAILED, JobState.CANCELLED, JobState.QUEUED))})")

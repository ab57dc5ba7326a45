"""Helpers of the Store tests: ids, requests, submitting, a rendered job, refusals."""
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.jobs import Job, Refused
from bot.messages import refusal_text
from bot.result import JobResult
from bot.store import WorkerRun
from morph.request import RenderRequest

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
G1, G2 = 1001, 2002  # guilds
C1, C2 = 11, 12  # channels
ALICE, BOB, CAROL, ADMIN = 1, 2, 3, 99


def sqlite_only(settings) -> None:
    if not isinstance(settings.db_path, Path):
        pytest.skip("files in MORPH_DATA_DIR: SQLite only (PostgreSQL keeps them in the database)")



@contextmanager
def refused(match: str, locale: str = "en") -> Iterator[pytest.ExceptionInfo[Refused]]:
    """Like ``pytest.raises(Refused, match=...)``, on the text a member reads (the refusal rendered for
    ``locale``): the Store's refusals carry facts, not text."""
    with pytest.raises(Refused) as info:
        yield info
    shown = refusal_text(info.value, locale)
    assert re.search(match, shown), f"{match!r} not in {shown!r}"


def run(spec: str) -> WorkerRun:
    """``"w1/old"`` → worker w1, run old (``"w1"``: run r1)."""
    worker, _, run_id = spec.partition("/")
    return WorkerRun(worker, run_id or "r1")


def req(a="a dog", b="a cat", **kw):
    return RenderRequest([a, b], **kw)


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


async def rendered_job(store, settings, user=ALICE, frames=3, now=None, deliver=True, guild=G1) -> Job:
    job = await submit(store, user=user, now=now, guild=guild)
    claimed = await store.claim(run("w1"), now=now)
    assert claimed.id == job.id
    files = {f"frame_{i:03d}.png": b"png%d" % i for i in range(frames)}
    await store.artifacts.save(claimed, {**files, "morph.gif": b"GIF89a"})
    await store.mark_rendered(job.id, JobResult(frame_count=frames, candidates=(0, 1)), run("w1"), now=now)
    if deliver:
        await store.mark_delivered(job.id, 1000 + job.id, now=now)
    return await store.get(job.id)

"""The pictures of /morph-images jobs (bot.store.uploads), on SQLite and PostgreSQL: stored with the job or not at
all, copied only within a server, handed to the worker as files, removed with the job's files."""
import asyncio
from pathlib import Path

import pytest
from store_helpers import ALICE, BOB, G1, G2, count_jobs, run, submit

from bot.jobs import Refusal, Refused
from bot.messages import refusal_text
from bot.result import JobResult
from morph.request import RenderRequest

PNG_A, PNG_B = b"\x89PNG first", b"\x89PNG second"


def pictures(second=True) -> RenderRequest:
    return RenderRequest(prompts=["", "" if second else "a cat"],
                         images=["upload:first", "upload:second" if second else None], frames=3)


async def test_pictures_are_stored_with_their_job(store):
    job = await submit(store, request=pictures(), uploads={0: PNG_A, 1: PNG_B})
    assert await store.uploads(job.id) == {0: PNG_A, 1: PNG_B}
    mixed = await submit(store, user=BOB, request=pictures(second=False), uploads={0: PNG_A})
    assert await store.uploads(mixed.id) == {0: PNG_A}
    plain = await submit(store, user=BOB, guild=G2)
    assert await store.uploads(plain.id) == {}


async def test_a_picture_end_without_its_picture_queues_nothing(store):
    for uploads in ({0: PNG_A}, None):
        with pytest.raises(Refused) as refused:
            await submit(store, request=pictures(), uploads=uploads)
        assert refused.value.kind is Refusal.PICTURES_GONE and refused.value.values == {"job": None}
        assert refusal_text(refused.value) == ("The pictures are no longer kept; upload them again with "
                                               "/morph-images.")
    assert await count_jobs(store) == 0
    assert await store.db.fetchval("SELECT COUNT(*) FROM uploads") == 0


async def test_reroll_copies_the_pictures_within_the_server_only(store, clock):
    job = await submit(store, request=pictures(), uploads={0: PNG_A, 1: PNG_B}, clock=clock)
    copy = await submit(store, user=BOB, request=pictures(), uploads_from=job.id)
    assert await store.uploads(copy.id) == {0: PNG_A, 1: PNG_B}
    with pytest.raises(Refused) as refused:
        await submit(store, user=BOB, guild=G2, request=pictures(), uploads_from=job.id)
    assert refused.value.kind is Refusal.PICTURES_GONE
    assert refusal_text(refused.value, "ja") == (f"モーフ #{job.id} の画像はもう保存されていません。"
                                                 "/画像モーフ でもう一度アップロードしてください。")
    assert await count_jobs(store) == 2


async def test_the_worker_gets_the_jobs_own_pictures_as_files(store, tmp_path):
    job = await submit(store, request=RenderRequest(prompts=["", "a cat"], images=["/etc/passwd", None]),
                       uploads={0: PNG_A})
    request = await store.pictures_for_render(job, tmp_path)
    assert request.images[1] is None and request.prompts == ["", "a cat"]
    assert request.images[0].startswith(str(tmp_path))
    assert await asyncio.to_thread(Path(request.images[0]).read_bytes) == PNG_A
    await store.db.execute("DELETE FROM uploads WHERE job_id = $1", job.id)
    with pytest.raises(Exception, match="no longer kept"):
        await store.pictures_for_render(job, tmp_path)


async def test_pictures_go_with_the_results_files(store, clock):
    old = await submit(store, request=pictures(), uploads={0: PNG_A, 1: PNG_B}, now=clock.t - 20 * 86400)
    claimed = await store.claim(run("w1"), now=clock.t - 20 * 86400)
    await store.artifacts.save(claimed, {"morph.gif": b"GIF89a"})
    await store.mark_rendered(old.id, JobResult(frame_count=3, candidates=(0,)), run("w1"), now=clock.t - 20 * 86400)
    await store.mark_delivered(old.id, 5, now=clock.t - 20 * 86400)
    waiting = await submit(store, user=BOB, request=pictures(), uploads={0: PNG_A, 1: PNG_B},
                           now=clock.t - 20 * 86400)  # still queued (a paused server): keeps its pictures
    cancelled = await submit(store, user=ALICE, guild=G2, request=pictures(), uploads={0: PNG_A, 1: PNG_B},
                             now=clock.t - 20 * 86400)
    await store.cancel(cancelled.id, actor_id=ALICE, now=clock.t - 20 * 86400)
    assert await store.purge() == 1
    assert await store.uploads(old.id) == {} and await store.uploads(cancelled.id) == {}
    assert await store.uploads(waiting.id) == {0: PNG_A, 1: PNG_B}


async def test_deleting_a_result_deletes_its_pictures(store):
    job = await submit(store, request=pictures(), uploads={0: PNG_A, 1: PNG_B})
    claimed = await store.claim(run("w1"))
    await store.artifacts.save(claimed, {"morph.gif": b"GIF89a"})
    await store.mark_rendered(job.id, JobResult(frame_count=3, candidates=(0,)), run("w1"))
    await store.delete_result(job.id, actor_id=ALICE)
    assert await store.uploads(job.id) == {}


async def test_pictures_count_in_the_storage_budget_and_go_with_the_result_it_expires(store, clock):
    """A picture morph's stored bytes are its files and its uploads: a server's share that its files alone would
    fit is exceeded with its pictures, so the result expires and its pictures are deleted in the same step; a
    result within the budget keeps them."""
    big = b"\x89PNG" + b"\0" * 3000
    jobs = []
    for guild in (G1, G2):
        job = await submit(store, guild=guild, request=pictures(), uploads={0: big, 1: PNG_B}, clock=clock)
        claimed = await store.claim(run("w1"))
        await store.artifacts.save(claimed, {"morph.gif": b"GIF89a"})
        assert await store.mark_rendered(job.id, JobResult(frame_count=3, candidates=(0,)), run("w1"),
                                         stored_bytes=1000)
        await store.mark_delivered(job.id, 5)
        jobs.append(job)
    for job in jobs:
        assert (await store.get(job.id)).stored_bytes == 1000 + len(big) + len(PNG_B)
    # 2 × 4012 bytes: within 10 KiB, but a server's share is 3 KiB, which the files alone (1000) would fit
    store.settings = store.settings.replace(storage_max_gb=10 * 1024 / 1024 ** 3, storage_guild_share=0.3)
    assert await store.enforce_storage_budget() == [jobs[0].id, jobs[1].id]
    assert await store.uploads(jobs[0].id) == {} and await store.uploads(jobs[1].id) == {}
    store.settings = store.settings.replace(storage_guild_share=1.0)
    third = await submit(store, guild=G2, request=pictures(), uploads={0: big, 1: PNG_B}, clock=clock)
    claimed = await store.claim(run("w1"))
    await store.mark_rendered(third.id, JobResult(frame_count=3, candidates=(0,)), run("w1"), stored_bytes=1000)
    await store.mark_delivered(third.id, 5)
    assert await store.enforce_storage_budget() == [] and await store.uploads(third.id) == {0: big, 1: PNG_B}

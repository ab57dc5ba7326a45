"""Scenario 3: Discord faults — 429s and 5xx on the result upload, a dropped gateway, a lost response —
and the result still arrives exactly once."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import subprocess
import threading

import pytest
from e2e_helpers import assert_unavailable, gif_frames, job_id_of

from fakediscord import InteractionFailed, eventually

RESULT_POST = r"^/channels/\d+/messages$"


@pytest.mark.slow
async def test_result_survives_429_500_503_and_a_dropped_gateway(harness):
    fake, h = harness.fake, harness
    await h.start_bot(default_steps=12)
    alice = h.guild.add_member("alice")
    bob = h.guild.add_member("bob")

    # discord.py retries 429 (after retry_after) and 500 (after 1 s) itself; a 503 reaches the bot,
    # whose delivery backs off and tries again.
    rate = fake.fail_route("POST", RESULT_POST, 429, times=2, retry_after=0.3)
    boom = fake.fail_route("POST", RESULT_POST, 500, times=1)
    down = fake.fail_route("POST", RESULT_POST, 503, times=1)
    react = fake.fail_route("PUT", r"/reactions/", 429, times=1, retry_after=0.2)

    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=8)
    job_id = job_id_of(it.content)
    status = it.original
    await fake.wait_for_message(lambda m: m is status and ("rendering" in m.content or "done" in m.content),
                                timeout=60)

    assert await fake.drop_gateway() == 1
    during = fake.slash(bob, "morph-queue")  # sent while the bot is away: replayed on RESUME
    await during
    assert during.ephemeral and during.latency < 3.0

    result = await h.result_message(job_id, timeout=90)
    job = await h.wait_state(job_id, "delivered", timeout=30)
    assert job.result_message_id == result.id
    assert len(gif_frames(result.attachment(f"morph-{job_id}.gif").data)) == 8
    assert (rate.hits, boom.hits, down.hits, react.hits) == (2, 1, 1, 1)
    posts = [r.status for r in fake.requests_to("POST", RESULT_POST)]
    assert posts == [429, 429, 500, 503, 200], posts
    assert fake.gateway_stats["resumes"] >= 1 and fake.gateway_stats["identifies"] == 1

    # the 1️⃣..K reactions come after the post (one of them after a 429)
    keycaps = ["1️⃣", "2️⃣", "3️⃣"]
    assert await eventually(lambda: list(result.reactions)[:3] == keycaps, timeout=10), result.reactions

    # a session Discord will not resume: the bot identifies again and its components keep working
    await fake.drop_gateway(mode="invalidate")
    await eventually(lambda: fake.gateway_stats["identifies"] == 2 and fake.connected, timeout=10)
    assert fake.gateway_stats["identifies"] == 2
    click = await fake.click(bob, result, result.custom_ids()[2])
    assert click.latency < 3.0 and click.original.attachments
    # posted once: checked after the reconnect and a click answered since (later events), not after a sleep
    assert len(h.result_messages(job_id)) == 1
    assert fake.violations == []


async def test_delivery_retry_comes_when_the_log_says(harness, caplog):
    """A 503 on the result post: the bot logs "retry 1 in N s" and really posts again N s later (the
    delivery loop sleeps until the job's retry time, not until its next 5 s poll); once delivered, the job
    keeps no error."""
    fake, h = harness.fake, harness
    await h.start_bot()
    alice = h.guild.add_member("alice")
    down = fake.fail_route("POST", RESULT_POST, 503, times=1)
    caplog.set_level(logging.WARNING, logger="bot.delivery")

    job_id = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=2)).content)
    await h.result_message(job_id, timeout=90)
    job = await h.wait_state(job_id, "delivered", timeout=30)
    assert down.hits == 1 and job.error is None and job.delivery_attempts == 1

    said = [float(m.group(1)) for r in caplog.records
            if (m := re.search(rf"delivery of job {job_id} failed .*; retry 1 in ([0-9.]+) s", r.getMessage()))]
    failed, posted = [r.at for r in fake.requests_to("POST", RESULT_POST)]
    assert len(said) == 1 and 1.0 <= said[0] <= 3.0, said
    assert said[0] - 0.2 <= posted - failed <= said[0] + 0.8, (said, posted - failed)


async def test_lost_response_is_not_posted_twice(harness):
    """Discord creates the message but the answer is lost (503 after the fact): the bot's retry finds
    its earlier post in the channel history and adopts it instead of posting again."""
    fake, h = harness.fake, harness
    await h.start_bot()
    alice = h.guild.add_member("alice")
    lost = fake.fail_route("POST", RESULT_POST, 503, times=1, apply=True)

    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)
    job_id = job_id_of(it.content)
    job = await h.wait_state(job_id, "delivered", timeout=60)
    assert lost.hits == 1
    posted = h.result_messages(job_id)
    assert len(posted) == 1 and job.result_message_id == posted[0].id
    assert [r.status for r in fake.requests_to("POST", RESULT_POST)] == [503]
    assert fake.requests_to("GET", RESULT_POST)  # the history check that found it
    assert fake.violations == []


async def test_lost_response_inside_discord_py_retry_is_not_posted_twice(harness):
    """A 500 after Discord created the message: discord.py itself retries the POST (before the bot's
    history check could run). The retry carries the same ``nonce`` with ``enforce_nonce`` (discord.py 2.7
    sends one on every send; the bot's own is ``morph-job-<id>``), so Discord — and the fake — answer with
    the message created the first time instead of posting it twice."""
    fake, h = harness.fake, harness
    await h.start_bot()
    alice = h.guild.add_member("alice")
    lost = fake.fail_route("POST", RESULT_POST, 500, times=1, apply=True)

    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)
    job_id = job_id_of(it.content)
    await h.wait_state(job_id, "delivered", timeout=60)
    assert lost.hits == 1
    posts = fake.requests_to("POST", RESULT_POST)
    assert [r.status for r in posts] == [500, 200] and posts[0].json["nonce"] == posts[1].json["nonce"]
    assert len(h.result_messages(job_id)) == 1


@pytest.mark.parametrize("steps", [
    pytest.param(60, marks=pytest.mark.slow),  # the render is still running when the answer fails: it is cancelled
    2,  # the render is already done when the answer fails: it is withdrawn, not posted
])
async def test_unanswered_morph_takes_its_job_back(harness, steps):
    """The /morph answer reaches Discord after 3 s (a slow network): the user saw "This interaction
    failed", so the job must not be posted behind their back, nor hold one of their slots."""
    fake, h = harness.fake, harness
    await h.start_bot(max_user_active=1, default_steps=steps, cooldown_s=60)
    alice = h.guild.add_member("alice")
    fake.delay_route("POST", r"^/interactions/\d+/[^/]+/callback$", 3.2, times=1)

    it = fake.slash(alice, "morph", from_="a dog", to="a cat", frames=8)
    with pytest.raises(InteractionFailed):
        await it
    async def settled():
        jobs = await h.store.list_jobs(None, states=["queued", "running", "rendered", "delivered", "cancelled"])
        return jobs if jobs and jobs[0].state in ("cancelled", "delivered") else None

    jobs = await eventually(settled, timeout=10)
    assert jobs, "the job neither got cancelled nor delivered"
    assert [j.state for j in jobs] == ["cancelled"]
    # the late callback, the failed interaction, and the bot's apology on the dead interaction
    assert {v["code"] for v in fake.violations} == {10062} and len(fake.violations) <= 3
    again = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)
    assert not again.ephemeral  # the slot was given back, and the withdrawn job counts for no cooldown
    await h.result_message(job_id_of(again.content), timeout=90)
    assert h.result_messages(jobs[0].id) == []


async def test_lost_answer_to_morph_keeps_the_job_and_its_message(harness):
    """Discord applied the /morph answer but replied 500; discord.py retried and got 40060 "already
    acknowledged". The first answer stands: the job is kept and its public message is completed, not left
    with a live Cancel button for a withdrawn job."""
    fake, h = harness.fake, harness
    await h.start_bot()
    alice = h.guild.add_member("alice")
    lost = fake.fail_route("POST", r"^/interactions/\d+/[^/]+/callback$", 500, times=1, apply=True)
    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)
    job_id = job_id_of(it.content)
    assert lost.hits == 1 and "queued" in it.content
    await h.result_message(job_id)
    job = await h.wait_state(job_id, "delivered")
    assert job.status_message_id == it.original.id
    await fake.wait_for_message(lambda m: m is it.original and "done" in m.content, timeout=10)
    assert it.original.components == []
    assert [v["code"] for v in fake.violations] == [40060]  # discord.py's retry of the applied answer


@pytest.mark.slow
async def test_a_locked_database_answers_unavailable_in_time_and_then_works_again(harness):
    """Another process holds the database's write lock for 4 s: /morph and a pick are answered within
    Discord's 3 s, privately, that the queue is unavailable for a moment, and nothing is queued; once the
    lock is gone both work again."""
    fake, h = harness.fake, harness
    await h.start_bot()
    alice, bob = h.guild.add_member("alice"), h.guild.add_member("bob")
    first = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)).content)
    result = await h.result_message(first)
    await h.wait_state(first, "delivered")

    async def while_locked(action):
        locked, release = threading.Event(), threading.Event()

        def hold():
            conn = sqlite3.connect(h.tmp / "morph.sqlite3", timeout=10)
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            release.wait(4.0)
            conn.rollback()
            conn.close()

        holder = asyncio.create_task(asyncio.to_thread(hold))
        await asyncio.to_thread(locked.wait)
        try:
            it = await action()
        finally:
            release.set()
            await holder
        return it

    it = await while_locked(lambda: fake.slash(bob, "morph", from_="a sun", to="a moon", frames=4))
    assert_unavailable(it)
    assert [r["id"] for r in await h.store.db.fetch("SELECT id FROM jobs")] == [first]  # nothing queued
    pick = result.custom_ids()[0]
    it = await while_locked(lambda: fake.click(bob, result, pick))
    assert_unavailable(it)

    answer = await fake.slash(bob, "morph", from_="a sun", to="a moon", frames=4)
    assert "queued" in answer.content and not answer.ephemeral
    second = job_id_of(answer.content)
    await h.result_message(second)
    picked = await fake.click(bob, result, pick)
    assert picked.original.attachments and not picked.ephemeral and str(bob.id) in picked.original.content
    assert fake.violations == []


@pytest.fixture
def small_disk(tmp_path):
    """A real 32 KiB file system (tmpfs) for the artifacts: writes fail with ENOSPC."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and permission to mount a tmpfs (a real full disk); not available here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
async def test_a_full_disk_puts_the_job_back_and_leaves_no_files(harness, small_disk):
    fake, h = harness.fake, harness
    await h.start_bot(data_dir=small_disk)
    h.bot.worker.disk_full_pause_s = 1.0
    alice = h.guild.add_member("alice")
    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=12)
    job_id = job_id_of(it.content)

    async def back_in_queue():
        job = await h.store.get(job_id)
        return job.started_at is None and job.state == "queued" and h.bot.worker.current is None

    assert await eventually(lambda: h.bot.worker._disk_full_until > 0, timeout=60)
    assert await eventually(back_in_queue, timeout=10)
    job = await h.store.get(job_id)
    assert job.attempts == 0 and job.error is None  # not failed, not counted as a crash
    assert list(small_disk.iterdir()) == []  # the partial output is gone
    await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    await h.result_message(job_id, timeout=60)
    assert (await h.wait_state(job_id, "delivered")).attempts == 0
    assert fake.violations == []


@pytest.mark.slow
async def test_a_full_disk_with_nothing_to_expire_does_not_spin_and_resumes_when_room_comes(harness, small_disk,
                                                                                           caplog):
    """The data folder's disk is full and no result is old enough to expire: the job goes back to the queue once
    (no attempt counted), the worker renders nothing while there is no room (no render every minute into a full
    disk), ``/morphadmin stats`` tells the admins why the queue waits, and once there is room the job is rendered
    and posted once, by itself, and the notice is gone."""
    fake, h = harness.fake, harness
    caplog.set_level(logging.INFO, logger="bot.worker")
    await h.start_bot(data_dir=small_disk)
    h.bot.worker.disk_full_pause_s = 0.3  # the fixed pause a full disk had: it would render again and again
    alice, admin = h.guild.add_member("alice"), h.guild.add_member("root", admin=True)
    job_id = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=12)).content)

    def no_room_lines():
        return [r for r in caplog.records if r.name == "bot.worker" and f"job #{job_id}: " in r.getMessage()
                and "back in the queue" in r.getMessage()]

    assert await eventually(lambda: len(no_room_lines()) >= 1, timeout=60)
    await asyncio.sleep(4.0)  # many times the pause, and the time a render takes
    assert len(no_room_lines()) == 1, [r.getMessage() for r in no_room_lines()]
    job = await h.store.get(job_id)
    assert (job.state, job.attempts, job.error) == ("queued", 0, None)
    [full] = await h.store.storage_full()
    assert full["worker_id"] == h.bot.worker.worker_id and full["needed"] > 0
    stats = await fake.slash(admin, "morphadmin stats")
    assert "Storage has been full" in stats.content and str(small_disk) not in stats.content

    await asyncio.to_thread(subprocess.run, ["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    await h.result_message(job_id, timeout=30)  # well before a back-off of minutes: the room is measured
    done = await h.wait_state(job_id, "delivered")
    assert done.attempts == 0 and len(h.result_messages(job_id)) == 1
    assert await h.store.storage_full() == []
    assert "Storage has been full" not in (await fake.slash(admin, "morphadmin stats")).content
    assert len(no_room_lines()) == 1

"""Scenario 3: Discord faults — 429s and 5xx on the result upload, a dropped gateway, a lost response —
and the result still arrives exactly once."""
from __future__ import annotations

import asyncio
import logging
import re

import pytest

from bot.sandbox import InteractionFailed, eventually

from e2e_helpers import gif_frames, job_id_of

RESULT_POST = r"^/channels/\d+/messages$"


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

    await asyncio.sleep(1.0)
    assert len(h.result_messages(job_id)) == 1
    assert list(result.reactions)[:3] == ["1️⃣", "2️⃣", "3️⃣"]

    # a session Discord will not resume: the bot identifies again and its components keep working
    await fake.drop_gateway(mode="invalidate")
    await eventually(lambda: fake.gateway_stats["identifies"] == 2 and fake.connected, timeout=10)
    assert fake.gateway_stats["identifies"] == 2
    click = await fake.click(bob, result, result.custom_ids()[2])
    assert click.latency < 3.0 and click.original.attachments
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
    60,  # the render is still running when the answer fails: it is cancelled
    2,  # the render is already done when the answer fails: it is withdrawn, not posted
])
async def test_unanswered_morph_takes_its_job_back(harness, steps):
    """The /morph answer reaches Discord after 3 s (a slow network): the user saw "This interaction
    failed", so the job must not be posted behind their back, nor hold one of their slots."""
    fake, h = harness.fake, harness
    await h.start_bot(max_user_active=1, default_steps=steps)
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
    assert not again.ephemeral  # the slot was given back
    await h.result_message(job_id_of(again.content), timeout=90)
    assert h.result_messages(jobs[0].id) == []

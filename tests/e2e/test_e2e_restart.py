"""Scenario 2: the bot process is killed (SIGKILL, no clean shutdown) mid-render and mid-upload, started
again on the same database → every job is delivered exactly once, and components and reactions on
results posted by the previous process still work.

The bot runs as ``python -m bot`` with DISCORD_API_BASE / DISCORD_GATEWAY_URL / DISCORD_TOKEN / MORPH_DB
pointing at the fake Discord in this test process.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from e2e_helpers import BotProcess, db_job, gif_frames, job_id_of
from e2e_helpers import result_messages as results

from fakediscord import eventually

RESULT_POST = r"^/channels/\d+/messages$"
pytestmark = pytest.mark.slow  # three bot processes, each loading torch


async def delivered(fake, db, job_id: int, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        row = db_job(db, job_id)
        if row.get("state") == "delivered" and results(fake, job_id):
            return row
        if row.get("state") in ("failed", "cancelled") or time.monotonic() > deadline:
            raise AssertionError(f"job {job_id}: {row.get('state')} {row.get('error')}")
        await asyncio.sleep(0.2)


async def test_kill_mid_render_and_mid_upload(fake, tmp_path):
    guild = fake.add_guild("Morph Club")
    alice, bob, carol = guild.add_member("alice"), guild.add_member("bob"), guild.add_member("carol")
    db = tmp_path / "morph.sqlite3"
    env = dict(MORPH_DEFAULT_STEPS=15, MORPH_MAX_USER_ACTIVE=3)

    first = await BotProcess(fake, tmp_path, **env).start()
    try:
        # A: delivered by the first process
        a = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)).content)
        await delivered(fake, db, a)
        (result_a,) = results(fake, a)

        # B: long render, killed once progress shows; C: queued behind it
        it_b = await fake.slash(alice, "morph", from_="a house", to="a boat", frames=40)
        b = job_id_of(it_b.content)
        c = job_id_of((await fake.slash(bob, "morph", from_="a sun", to="a moon", frames=4)).content)
        await fake.wait_for_message(lambda m: m is it_b.original and "%" in m.content, timeout=90)
    finally:
        await first.kill()
    assert db_job(db, b)["state"] == "running" and db_job(db, c)["state"] == "queued"

    second = await BotProcess(fake, tmp_path, **env).start()
    try:
        row_b = await delivered(fake, db, b)
        await delivered(fake, db, c)
        assert row_b["attempts"] == 1  # recovered once, rendered again
        assert len(gif_frames(results(fake, b)[0].attachment(f"morph-{b}.gif").data)) == 40
        link = f"/{results(fake, b)[0].id}"  # the status message of B, edited by the new process
        await fake.wait_for_message(lambda m: m is it_b.original and link in m.content, timeout=15)

        # the first process's result still works: button 3 and the 3️⃣ reaction
        pick3 = [cid for cid in result_a.custom_ids() if cid.startswith(f"morph:pick:{a}-")][2]
        frame = int(pick3.rsplit(":", 1)[1])
        name = f"morph-{a}-frame-{frame + 1:03d}.png"
        expected = (tmp_path / "artifacts" / db_job(db, a)["artifact_dir"] / f"frame_{frame:03d}.png").read_bytes()
        click = await fake.click(bob, result_a, pick3)
        assert click.latency < 3.0 and click.original.attachment(name).data == expected
        await fake.react(carol, result_a, "3️⃣")
        reply = await fake.wait_for_message(
            lambda m: m.interaction_id is None and any(x.filename == name for x in m.attachments), timeout=30)
        assert reply.attachment(name).data == expected

        # D: the process dies while the result upload is in flight; Discord still creates the message
        slow = fake.delay_route("POST", RESULT_POST, 3.0, times=1)
        d = job_id_of((await fake.slash(bob, "morph", from_="a key", to="a lock", frames=4)).content)
        assert await eventually(lambda: slow.hits, timeout=90, interval=0.05), "the upload of D never started"
    finally:
        await second.kill()
    assert db_job(db, d)["state"] == "rendered"
    # the fake finishes the request the dead process started (its 3 s delay): the message appears once
    assert await eventually(lambda: results(fake, d), timeout=15, interval=0.05)
    assert len(results(fake, d)) == 1

    third = await BotProcess(fake, tmp_path, **env).start()
    try:
        row_d = await delivered(fake, db, d)
        assert row_d["result_message_id"] == results(fake, d)[0].id  # adopted, not posted again
    finally:
        rc = await third.interrupt()
    assert rc == 0, third.log_tail()

    for job_id in (a, b, c, d):
        assert len(results(fake, job_id)) == 1, job_id
    assert fake.gateway_stats["identifies"] == 3
    assert fake.violations == []
    assert fake.unknown_routes == []

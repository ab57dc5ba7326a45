"""A database outage end to end: the bot (real discord.py against the fake Discord) on a PostgreSQL server
of this module alone (``own_postgres``), which is stopped while a morph renders and started again.

While it is away every interaction (/morph, a pick, reroll, refine, cancel, an admin command) is answered
within Discord's 3 s, privately, with "unavailable for a moment", and nothing is queued; the morph that was
rendering is delivered once when the server is back; /morph works again by itself; the log says it once.
"""
from __future__ import annotations

import logging

import pytest
from e2e_helpers import assert_unavailable, job_id_of

from fakediscord import eventually

pytestmark = pytest.mark.slow


async def test_postgres_outage_answers_every_interaction_and_loses_nothing(harness, own_postgres, caplog):
    fake, h = harness.fake, harness
    caplog.set_level(logging.INFO)
    url = own_postgres.create_database()
    await h.start_bot(db_path=url, max_user_active=3)
    alice, bob = h.guild.add_member("alice"), h.guild.add_member("bob")
    admin = h.guild.add_member("root", admin=True)
    first = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)).content)
    result = await h.result_message(first)
    await h.wait_state(first, "delivered")
    long_it = await fake.slash(alice, "morph", from_="a sun", to="a moon", frames=60)
    long_id = job_id_of(long_it.content)

    async def rendering():
        job = await h.store.get(long_id)
        return job.state == "running" and job.progress is not None
    assert await eventually(rendering, timeout=120, interval=0.05)
    ids = [c for c in result.custom_ids()]
    pick = next(c for c in ids if c.startswith("morph:pick:"))
    reroll = next(c for c in ids if c.startswith("morph:reroll:"))
    cancel = long_it.original.custom_ids()[0]

    outage_from = len(caplog.records)  # the log before it: start-up (the migrations applied, INFO)
    own_postgres.stop_server()
    try:
        assert_unavailable(await fake.slash(bob, "morph", from_="a tree", to="a rock", frames=4))
        assert_unavailable(await fake.click(bob, result, pick))
        assert_unavailable(await fake.click(bob, result, reroll))
        assert_unavailable(await fake.click(alice, long_it.original, cancel))
        assert_unavailable(await fake.slash(admin, "morphadmin pause"))
        assert_unavailable(await fake.slash(bob, "morph", from_="a boat", to="a car", frames=4))
    finally:
        own_postgres.start_server()

    # back by itself: the rendering morph is delivered once, a new /morph and a pick work
    await h.result_message(long_id, timeout=120)
    done = await h.wait_state(long_id, "delivered", timeout=60)
    assert done.attempts == 0 and len(h.result_messages(long_id)) == 1
    it = await fake.slash(bob, "morph", from_="a tree", to="a rock", frames=4)
    assert not it.ephemeral and "queued" in it.content
    again = job_id_of(it.content)
    picked = await fake.click(bob, result, pick)
    assert picked.original.attachments and not picked.ephemeral
    await h.result_message(again, timeout=60)
    # nothing was queued by the interactions answered "unavailable": the jobs are the three that were asked for
    rows = await h.store.db.fetch("SELECT id FROM jobs ORDER BY id")
    assert [r["id"] for r in rows] == [first, long_id, again]
    assert not (await h.store.is_paused(h.guild.id))
    for job_id in (first, long_id, again):
        assert len(h.result_messages(job_id)) == 1
    # the outage in the log: one warning when it went, one line when it was back, no traceback
    db_lines = [r.getMessage() for r in caplog.records[outage_from:] if r.name.startswith("bot.db")]
    assert len(db_lines) == 2 and "unavailable" in db_lines[0] and "is back" in db_lines[1], db_lines
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert fake.violations == []

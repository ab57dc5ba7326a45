"""Scenario 5: a burst of /morph from many users at once while a render runs.

Functional only: every interaction is answered once within Discord's 3 s, the per-user limit (2 active
jobs) holds exactly, with a clear private refusal naming the jobs holding the slots, and every accepted job
is delivered exactly once. How fast the answers come is measured by ``python -m bench.ack`` (200 commands,
figures in bench/RESULTS.md), not here.
"""
from __future__ import annotations

import asyncio
import re
from collections import defaultdict

import pytest
from e2e_helpers import job_id_of

USERS, PER_USER, LIMIT, FRAMES = 10, 4, 2, 2


@pytest.mark.slow  # 17 renders
async def test_burst_of_morphs(harness):
    fake, h = harness.fake, harness
    await h.start_bot(default_frames=FRAMES, default_steps=2, max_user_active=LIMIT, max_guild_queue=200)
    mod = h.guild.add_member("mod", permissions=["manage_guild"])
    users = [h.guild.add_member(f"user{i:02d}") for i in range(USERS)]

    # a render of another server runs when the burst arrives
    other = fake.add_guild("Other Club")
    first = await fake.slash(other.add_member("starter"), "morph", from_="a long morph", to="of many frames",
                             frames=16)
    first_id = job_id_of(first.content)
    await h.wait_state(first_id, "running", timeout=60)

    # The burst's server is paused: its jobs stay queued, so every user holds exactly LIMIT slots when their
    # later commands arrive (no job of theirs can finish meanwhile) and the counts below are exact.
    assert (await fake.slash(mod, "morphadmin pause")).ephemeral
    sent = [fake.slash(users[i % USERS], "morph", from_=f"thing {i}", to="a cat", frames=FRAMES)
            for i in range(USERS * PER_USER)]
    await asyncio.gather(*sent)  # raises InteractionFailed if any missed the 3 s deadline
    assert max(it.latency for it in sent) < 3.0

    # an answer may come as "thinking…" first (when the database is busy) and be filled in after
    answers = [await it.reply() for it in sent]
    accepted, refused = defaultdict(list), defaultdict(list)
    for it, answer in zip(sent, answers, strict=True):
        (refused if answer.ephemeral else accepted)[it.user.id].append(answer)
    for user in users:
        assert len(accepted[user.id]) == LIMIT and len(refused[user.id]) == PER_USER - LIMIT
        held = {job_id_of(answer.content) for answer in accepted[user.id]}
        for answer in refused[user.id]:
            assert answer.content.startswith("❌") and f"the limit is {LIMIT}" in answer.content, answer.content
            assert {int(n) for n in re.findall(r"#(\d+)", answer.content)} == held  # names the jobs holding the slots
    job_ids = [job_id_of(answer.content) for answers in accepted.values() for answer in answers]
    assert len(set(job_ids)) == len(job_ids) == USERS * LIMIT
    # every interaction answered once: one response each, none answered twice (that would be a violation)
    assert all(it.response_type in (4, 5) for it in sent)

    # resumed, every accepted job (and the first) is delivered exactly once
    assert (await fake.slash(mod, "morphadmin resume")).ephemeral
    for job_id in [first_id, *job_ids]:
        await h.wait_state(job_id, "delivered", timeout=300)
    for job_id in [first_id, *job_ids]:
        assert len(h.result_messages(job_id)) == 1, job_id
    assert fake.violations == []
    assert not any(m.pings_anyone for m in fake.all_messages())

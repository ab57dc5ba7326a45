"""Under Discord-like rate limits, after the interaction tokens died (so every status edit goes through the
one per-channel bucket of the bot token): every job is still delivered once and every status message
reaches its final text, and the bot does not hammer Discord with 429s."""
from __future__ import annotations

import asyncio
import time

import pytest
from e2e_helpers import job_id_of

JOBS_PER_USER, USERS = 2, 4


@pytest.mark.slow
async def test_queue_drains_under_rate_limits_after_token_expiry(harness):
    fake, h = harness.fake, harness
    await h.start_bot(fake_clock=True, default_frames=2, default_steps=2, max_guild_queue=50)
    limits = fake.use_discord_rate_limits()
    admin = h.guild.add_member("mod", permissions=["manage_guild"])
    users = [h.guild.add_member(f"user{i}") for i in range(USERS)]

    await fake.slash(admin, "morphadmin pause")
    its = [fake.slash(u, "morph", from_=f"thing {i}", to="a cat") for i in range(JOBS_PER_USER) for u in users]
    await asyncio.gather(*its)
    jobs = {job_id_of(it.content): it.original for it in its}
    fake.clock.advance(16 * 60)  # every /morph token is dead: status edits need the bot token now
    t0 = time.monotonic()
    await fake.slash(admin, "morphadmin resume")

    for job_id in jobs:
        await h.wait_state(job_id, "delivered", timeout=180)
    delivered_s = time.monotonic() - t0
    for job_id, status in jobs.items():
        link = f"/{h.result_messages(job_id)[0].id}"
        await fake.wait_for_message(lambda m, s=status, target=link: m is s and target in m.content, timeout=180)
    final_s = time.monotonic() - t0
    limited = sum(r.limited for r in limits)
    print(f"\n{len(jobs)} jobs under rate limits: delivered after {delivered_s:.1f} s, every status final after "
          f"{final_s:.1f} s; {limited} requests answered 429 of {len(fake.requests)}")
    for job_id in jobs:
        assert len(h.result_messages(job_id)) == 1
    assert limited <= len(jobs)  # discord.py paces itself from the headers; a few overruns at most
    assert fake.violations == []

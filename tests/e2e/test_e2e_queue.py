"""/morph-queue and /morphadmin list show each queued job at the place ``Store.position`` gives it (both read
every position in one ``Store.queued_positions`` query). A front without a worker, so the jobs stay queued."""
from __future__ import annotations

import re

from e2e_helpers import job_id_of


def places(text: str) -> dict[int, str]:
    """Job id -> what a listing says of it ('position N' or its state)."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"• #(\d+) .*?(position \d+|queued|running)\b", text)}


async def test_queue_listings_show_the_stores_positions(harness):
    h = harness
    await h.start_bot(run_worker=False, max_user_active=3)
    fake = h.fake
    alice, bob = h.guild.add_member("alice"), h.guild.add_member("bob")
    mod = h.guild.add_member("mod", permissions=["manage_guild"])
    ids = [job_id_of((await fake.slash(user, "morph", from_=f"a dog {n}", to="a cat")).content)
           for n, user in enumerate((alice, bob, alice, alice))]

    async def expected(job_ids):
        return {job_id: f"position {await h.store.position(job_id)}" for job_id in job_ids}

    mine = await fake.slash(alice, "morph-queue")
    assert mine.ephemeral and places(mine.content) == await expected([ids[0], ids[2], ids[3]])
    assert places(mine.content)[ids[3]] == "position 4"
    listing = await fake.slash(mod, "morphadmin list")
    assert listing.ephemeral and places(listing.content) == await expected(ids)

    assert not (await fake.slash(bob, "morph-cancel", job=ids[1])).content.startswith("❌")
    mine = await fake.slash(alice, "morph-queue")  # everyone behind bob's job moved up one place
    assert places(mine.content) == await expected([ids[0], ids[2], ids[3]])
    assert places(mine.content)[ids[3]] == "position 3"
    assert fake.violations == []

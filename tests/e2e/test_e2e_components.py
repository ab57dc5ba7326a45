"""The other components through the real bot: ❌ Cancel on the status message mid-render, the
/morph-cancel autocomplete, 🔁 Reroll and ❌ Delete on a result (author/admin only), which takes the result's
picks with it (as /morphadmin delete and hiding by reports do)."""
from __future__ import annotations

import pytest
from e2e_helpers import gif_frames, job_id_of


@pytest.mark.slow
async def test_cancel_autocomplete_reroll_delete(harness):
    fake, h = harness.fake, harness
    await h.start_bot(default_steps=20)
    alice, bob = h.guild.add_member("alice"), h.guild.add_member("bob")

    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=16)
    job = job_id_of(it.content)
    status = it.original

    typing = await fake.autocomplete(alice, "morph-cancel", "job", "")
    assert typing.response_type == 8 and [c["value"] for c in typing.response["choices"]] == [job]
    assert (await fake.autocomplete(bob, "morph-cancel", "job", "")).response["choices"] == []

    await h.wait_state(job, "running")
    cancel_id = status.custom_ids()[0]
    assert cancel_id == f"morph:cancel:{job}-{(await h.store.get(job)).token}"
    refused = await fake.click(bob, status, cancel_id)
    assert refused.ephemeral and "author" in refused.content and (await h.store.get(job)).state == "running"
    assert f"#{job} is not yours" in refused.content and "can cancel it" in refused.content  # Refusal.NOT_YOURS
    cancel = await fake.click(alice, status, cancel_id)
    assert cancel.response_type == 7 and "cancelled" in status.content and status.components == []
    await h.wait_state(job, "cancelled", timeout=30)

    done = job_id_of((await fake.slash(alice, "morph", from_="a tree", to="a car", frames=4)).content)
    result = await h.result_message(done)
    # No late progress edit may overwrite the answer, no result may appear. The job queued after the cancel
    # is delivered, so the worker has let go of the cancelled one and delivery has gone past it; then every
    # status edit still pending is applied (no fixed wait that a slow machine could outlast).
    await h.bot.delivery.editor.drain()
    assert "cancelled" in status.content and h.result_messages(job) == []
    assert not (h.tmp / "artifacts" / (await h.store.get(job)).folder_name).exists()
    ref = f"{done}-{(await h.store.get(done)).token}"
    reroll = await fake.click(bob, result, f"morph:reroll:{ref}")
    assert not reroll.ephemeral and f"#{done}" in reroll.content
    again = job_id_of(reroll.content)
    original, rerolled = await h.store.get(done), await h.store.get(again)
    assert rerolled.user_id == bob.id and rerolled.request.prompts[0] == "a tree"
    assert rerolled.request.seed != original.request.seed

    nope = await fake.click(bob, result, f"morph:delete:{ref}")
    assert nope.ephemeral and not result.deleted and f"#{done} is not yours" in nope.content
    assert "can delete it" in nope.content
    gone = await fake.click(alice, result, f"morph:delete:{ref}")
    assert gone.ephemeral
    if not result.deleted:
        await fake.wait_for_message(lambda m: m is result and m.deleted, timeout=10)
    assert (await h.store.get(done)).deleted_at is not None
    await h.result_message(again)

    # every /morph option through the real command path
    full = await fake.slash(alice, "morph", from_="a fox", to="a owl", frames=5, seed=42, negative="blurry",
                            boomerang=True, pacing="uniform", path="plain")
    fid = job_id_of(full.content)
    fres = await h.result_message(fid)
    job = await h.wait_state(fid, "delivered")
    request = job.request
    assert (request.seed, request.negative, request.pacing, request.path, job.boomerang) == (
        42, "blurry", "uniform", "plain", True)
    assert len(gif_frames(fres.attachment(f"morph-{fid}.gif").data)) == 2 * 5 - 2  # forward, then back
    assert "seed 42" in fres.content
    assert fake.violations == []


@pytest.mark.slow
async def test_deleting_or_hiding_a_result_takes_its_picks_pictures_with_it(harness):
    """A pick is a public reply with the frame's picture: when its result is deleted (❌ by its author,
    /morphadmin delete) or hidden by reports, the picks' pictures go too; other results' picks stay."""
    fake, h = harness.fake, harness
    await h.start_bot(pick_cooldown_s=0)
    alice, bob, cleo = (h.guild.add_member(n) for n in ("alice", "bob", "cleo"))
    admin = h.guild.add_member("mod", permissions=["manage_guild"])
    await fake.slash(admin, "morphadmin limits", report_hide_after=1)

    async def picked(words: tuple[str, str]):
        """A delivered result with two public picks: bob's button, cleo's reaction."""
        job_id = job_id_of((await fake.slash(alice, "morph", from_=words[0], to=words[1], frames=4)).content)
        result = await h.result_message(job_id)
        job = await h.wait_state(job_id, "delivered")
        button = await fake.click(bob, result, next(c for c in result.custom_ids() if ":pick:" in c))
        assert not button.ephemeral and button.original.attachments
        await fake.react(cleo, result, "1️⃣")
        by_reaction = await fake.wait_for_message(
            lambda m: m.interaction_id is None and m.attachments and str(cleo.id) in m.content
            and m.message_reference and m.message_reference["message_id"] == str(result.id), timeout=20)
        await h.settled()
        assert sorted(await h.store.pick_messages(job_id)) == sorted([button.original.id, by_reaction.id])
        return job, result, [button.original, by_reaction]

    async def gone(messages) -> None:
        for m in messages:
            if not fake.message(m.id).deleted:
                await fake.wait_for_message(lambda x, m=m: x.id == m.id and x.deleted, timeout=10)

    kept_job, _, kept = await picked(("a tree", "a car"))
    job, result, picks = await picked(("a dog", "a cat"))
    await fake.click(alice, result, f"morph:delete:{job.id}-{job.token}")
    await gone([result, *picks])

    job, result, picks = await picked(("a fox", "an owl"))
    answer = await fake.slash(admin, "morphadmin delete", job=job.id)
    assert answer.ephemeral and f"#{job.id}" in answer.content
    await gone([result, *picks])

    job, result, picks = await picked(("a cow", "a pig"))
    await fake.click(bob, result, f"morph:report:{job.id}-{job.token}")
    await fake.wait_for_message(lambda m: f"#{job.id} was hidden after 1 report" in m.content, 30)
    await gone([result, *picks])

    await h.settled()
    assert not any(fake.message(m.id).deleted for m in kept)  # another result's picks stay
    assert (await h.store.get(kept_job.id)).deleted_at is None
    assert fake.violations == []

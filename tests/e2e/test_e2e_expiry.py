"""Beyond the happy path of the interaction token: after its 15 minutes the bot edits the status message
and posts the result with its own token; without Send Messages in the channel it posts through the
interaction's followup webhook while the token lives."""
from __future__ import annotations

from e2e_helpers import gif_frames, job_id_of


async def test_status_and_result_after_the_token_expired(harness):
    fake, h = harness.fake, harness
    await h.start_bot(fake_clock=True, default_frames=4)  # the bot's Store runs on the fake's clock
    admin = h.guild.add_member("mod", permissions=["manage_guild"])
    alice = h.guild.add_member("alice")

    await fake.slash(admin, "morphadmin pause")
    it = await fake.slash(alice, "morph", from_="a dog", to="a cat")
    job_id = job_id_of(it.content)
    status = it.original
    fake.clock.advance(16 * 60)  # the /morph interaction token is dead now
    await fake.slash(admin, "morphadmin resume")

    result = await h.result_message(job_id, timeout=60)
    await fake.wait_for_message(lambda m: m is status and f"/{result.id}" in m.content, timeout=15)
    assert result.interaction_id is None  # posted with the bot token, not the dead webhook
    patches = fake.requests_to("PATCH", rf"^/channels/\d+/messages/{status.id}$")
    assert patches and all(r.status == 200 for r in patches)
    assert not [r for r in fake.requests if r.status == 401]  # never used the expired token
    assert fake.violations == []


async def test_no_send_permission_falls_back_to_the_followup(harness):
    fake, h = harness.fake, harness
    h.channel.overwrite(h.guild.bot_role, deny=["send_messages"])
    await h.start_bot(default_frames=4)
    alice = h.guild.add_member("alice")

    it = await fake.slash(alice, "morph", from_="a dog", to="a cat")
    job_id = job_id_of(it.content)
    result = await h.result_message(job_id, timeout=60)
    job = await h.wait_state(job_id, "delivered")
    assert result.interaction_id == it.id and not result.ephemeral  # the followup webhook
    assert job.result_message_id == result.id and len(h.result_messages(job_id)) == 1
    assert len(gif_frames(result.attachment(f"morph-{job_id}.gif").data)) == 4
    click = await fake.click(alice, result, result.custom_ids()[0])
    assert click.original.attachments and click.original.attachments[0].filename.endswith(".png")
    # the only rule "broken" is the refused channel post that made the bot fall back
    assert {v["status"] for v in fake.violations} == {403}
    assert all("send_messages" in v["rule"] for v in fake.violations)

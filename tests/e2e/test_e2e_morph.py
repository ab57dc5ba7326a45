"""Scenario 1: /morph dog cat → ack < 3 s with job id and position → progress edits → result message with
a GIF of the requested frame count, a contact sheet, buttons and a select → button 3, the select and the
3️⃣ reaction each post the PNG of that candidate frame."""
from __future__ import annotations

import itertools

import pytest
from e2e_helpers import gif_frames, job_id_of, png

from fakediscord import eventually


@pytest.mark.slow
async def test_morph_to_picked_frame(harness):
    fake, h = harness.fake, harness
    await h.start_bot(default_steps=60)  # a render of several seconds: progress edits come every 2 s
    alice = h.guild.add_member("alice")
    bob = h.guild.add_member("bob")

    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=8, seed=7)
    assert it.latency < 3.0 and it.response_type == 4 and not it.ephemeral
    job_id = job_id_of(it.content)
    assert "position" in it.content.lower() and "queued" in it.content.lower()
    status = it.original
    token = (await h.store.get(job_id)).token
    assert status.custom_ids() == [f"morph:cancel:{job_id}-{token}"]

    result = await h.result_message(job_id, timeout=90)
    job = await h.wait_state(job_id, "delivered")
    assert job.result_message_id == result.id
    print(f"render took {job.result.seconds:.1f} s")

    # progress: the status message went queued → rendering (with progress) → done, by throttled edits
    await fake.wait_for_message(lambda m: m is status and "done" in m.content, timeout=10)
    texts = [snap["content"] for snap in status.history]
    assert any("rendering" in t for t in texts), texts
    assert any("%" in t and "frames" in t for t in texts), texts  # at least one progress edit
    assert status.components == [] and f"/{result.id}" in status.content  # links to the result
    gaps = [b - a for a, b in itertools.pairwise(status.edit_times)]
    assert all(g >= 1.5 for g in gaps), gaps  # throttled edits

    # the result: GIF with the requested number of frames, a contact sheet, buttons 1..K and a select
    gif = gif_frames(result.attachment(f"morph-{job_id}.gif").data)
    assert len(gif) == 8
    sheet = png(result.attachment(f"morph-{job_id}-sheet.png").data)
    candidates = job.result.candidates
    assert sheet.width > gif[0].width and len(candidates) >= 3
    picks = [c for c in result.custom_ids() if c.startswith(f"morph:pick:{job_id}-")]
    assert picks == [f"morph:pick:{job_id}-{token}:{f}" for f in candidates]
    select = next(c for c in result.selects() if c["custom_id"] == f"morph:frames:{job_id}-{token}")
    assert [o["value"] for o in select["options"]] == [str(i) for i in range(8)]
    assert not result.pings_anyone and not status.pings_anyone
    assert list(result.reactions) == ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣"][: len(candidates)]

    third = candidates[2]
    expected = await h.store.artifacts.read(job, f"frame_{third:03d}.png")
    name = f"morph-{job_id}-frame-{third + 1:03d}.png"

    # button 3
    click = await fake.click(bob, result, picks[2])
    assert click.latency < 3.0 and click.response_type == 4
    assert click.original.attachment(name).data == expected
    assert png(expected).size == gif[0].size

    # the select menu
    carol, dave = h.guild.add_member("carol"), h.guild.add_member("dave")
    chose = await fake.select(carol, result, f"morph:frames:{job_id}-{token}", [str(third)])
    assert chose.original.attachment(name).data == expected

    # the 3️⃣ reaction: a reply in the channel
    await fake.react(dave, result, "3️⃣")
    reply = await fake.wait_for_message(lambda m: any(a.filename == name for a in m.attachments)
                                        and m.interaction_id is None, timeout=20)
    assert reply.attachment(name).data == expected and reply.message_reference["message_id"] == str(result.id)
    assert str(dave.id) in reply.content and not reply.pings_anyone
    # The bot's own 1️⃣..K reactions did not trigger picks: their events came over the gateway before the
    # click, the select and dave's reaction, and would be handled the same way, so by the time dave's reply is
    # there, replies to them would be too (no fixed wait).
    replies = [m for m in fake.all_messages() if m.message_reference and m.interaction_id is None]
    assert replies == [reply]

    assert len(h.result_messages(job_id)) == 1
    assert fake.violations == []


async def test_dev_guild_sync_and_a_guild_joined_later(harness):
    """DEV_GUILD_ID syncs the commands to that guild only (instant on Discord); a guild the bot joins while
    running arrives as GUILD_CREATE, and a global command works there."""
    fake, h = harness.fake, harness
    await h.start_bot(dev_guild_id=h.guild.id, default_frames=4)
    assert set(fake.commands) == {h.guild.id}
    names = {c["name"] for c in fake.commands[h.guild.id]}
    assert {"morph", "morph-cancel", "morph-queue", "morphadmin"} <= names
    alice = h.guild.add_member("alice")
    it = await fake.slash(alice, "morph", from_="a dog", to="a cat")
    await h.result_message(job_id_of(it.content))

    await h.stop_bot()
    fake.commands.clear()
    await h.start_bot(default_frames=4)  # global commands this time
    late = fake.add_guild("Late Club")
    await eventually(lambda: h.bot.get_guild(late.id) is not None, timeout=2)
    assert h.bot.get_guild(late.id) is not None
    bob = late.add_member("bob")
    it = await fake.slash(bob, "morph", from_="a tree", to="a car")
    result = await h.result_message(job_id_of(it.content))
    assert result.guild_id == late.id and result.channel_id == late.default_channel.id
    assert fake.violations == []

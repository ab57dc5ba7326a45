"""Abuse through the real bot: one server flooding the queue, the bot leaving a server, picks by banned or
hasty members, reactions that could flood a channel, and components that name another server's job or a
job of an older database."""
from __future__ import annotations

from e2e_helpers import job_id_of

from fakediscord import eventually


async def bot_message_with_buttons(h, channel_id: int, custom_ids: list[str]):
    """A message of the bot carrying these custom ids, as an earlier version or an earlier database left
    behind (discord.py only dispatches custom ids that are on the clicked message)."""
    import discord

    view = discord.ui.View(timeout=None)
    for n, cid in enumerate(custom_ids):
        view.add_item(discord.ui.Button(label=str(n + 1), custom_id=cid))
    sent = await h.bot.get_partial_messageable(channel_id).send("🎞️ an old result", view=view)
    return h.fake.message(sent.id)


def public_replies(fake, result):
    """Messages in the channel that reply to ``result`` (picks by reaction, refusals)."""
    return [m for m in fake.all_messages() if m.message_reference
            and m.message_reference.get("message_id") == str(result.id) and not m.ephemeral]


async def test_one_server_cannot_starve_another(harness):
    fake, h = harness.fake, harness
    await h.start_bot(max_user_active=10, max_guild_queue=10, default_frames=2, default_steps=2)
    other = fake.add_guild("Quiet Club")
    await eventually(lambda: h.bot.get_guild(other.id) is not None, timeout=5)
    busy = h.guild.add_member("busy")
    bob = other.add_member("bob")
    flood = [job_id_of((await fake.slash(busy, "morph", from_=f"a dog {i}", to="a cat")).content) for i in range(6)]
    single = job_id_of((await fake.slash(bob, "morph", from_="a tree", to="a car")).content)
    for job_id in (*flood, single):
        await h.wait_state(job_id, "delivered", timeout=120)
    starts = {j: (await h.store.get(j)).started_at for j in (*flood, single)}
    started = sorted(starts, key=starts.get)
    # oldest-first would render it 7th; taking turns, it waits for at most the flood's job(s) already begun
    assert started.index(single) <= 2, started
    assert fake.violations == []


async def test_leaving_a_server_cancels_its_morphs(harness):
    fake, h = harness.fake, harness
    await h.start_bot(default_steps=20)
    alice = h.guild.add_member("alice")
    running = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=40)).content)
    queued = job_id_of((await fake.slash(alice, "morph", from_="a sun", to="a moon", frames=4)).content)
    await h.wait_state(running, "running")
    fake.remove_guild(h.guild)
    for job_id in (running, queued):
        await h.wait_state(job_id, "cancelled", timeout=30)
    await eventually(lambda: h.bot.worker.current is None, timeout=30)
    assert h.result_messages(running) == [] and h.result_messages(queued) == []
    assert (await h.store.audit_log(h.guild.id))[0]["action"] == "left"


async def test_picks_obey_bans_cooldown_and_repeats_and_reactions_never_flood(harness):
    fake, h = harness.fake, harness
    await h.start_bot(pick_cooldown_s=3.0, fake_clock=True)  # the cooldowns pass by fake.clock.advance
    alice, bob, carol, dave = (h.guild.add_member(n) for n in ("alice", "bob", "carol", "dave"))
    admin = h.guild.add_member("mod", permissions=["manage_guild"])
    job_id = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=6)).content)
    result = await h.result_message(job_id)
    picks = [c for c in result.custom_ids() if c.startswith("morph:pick:")]

    await fake.slash(admin, "morphadmin ban", user=bob)
    banned = await fake.click(bob, result, picks[0])
    assert banned.ephemeral and "banned" in banned.content
    await fake.react(bob, result, "1️⃣")

    clicks = [await fake.click(carol, result, picks[i % len(picks)]) for i in range(5)]
    assert not clicks[0].ephemeral and clicks[0].original.attachments  # the first pick, in public
    assert all(c.ephemeral and "Slow down" in c.content for c in clicks[1:])
    fake.clock.advance(3.1)
    repeat = await fake.click(carol, result, picks[0])
    assert repeat.ephemeral and repeat.original.attachments  # the same frame again: only carol sees it

    await fake.react(dave, result, "2\u20e3")  # a keycap without U+FE0F, as some clients send it
    by_reaction = await fake.wait_for_message(
        lambda m: m.interaction_id is None and m.attachments and str(dave.id) in m.content, timeout=20)
    assert by_reaction.message_reference["message_id"] == str(result.id)
    fake.unreact(dave, result, "2\u20e3")
    fake.clock.advance(3.1)
    await fake.react(dave, result, "2️⃣")  # the same frame: not posted again
    await h.settled()
    assert public_replies(fake, result) == [by_reaction]
    picked = await h.store.picks(job_id)
    assert [(p["user_id"], p["source"]) for p in picked] == [(carol.id, "button"), (dave.id, "reaction")]

    # the result expires: six reaction toggles give one public notice, not six
    await h.store.purge(now=h.store.clock() + 20 * 86400)  # past the retention, not past its rows' (28 days)
    for _ in range(6):
        await fake.react(dave, result, "3️⃣")
        fake.unreact(dave, result, "3️⃣")
    notice = await fake.wait_for_message(lambda m: "expired" in m.content and not m.ephemeral, timeout=10)
    await h.settled()
    assert public_replies(fake, result) == [by_reaction, notice]
    assert fake.violations == []


async def test_components_act_only_on_their_own_job(harness):
    """After the database is replaced, job numbers start at 1 again: old buttons and reactions must not act on
    the new job #1 of another server; nor may a custom id naming another server's job."""
    fake, h = harness.fake, harness
    await h.start_bot(db_path=h.tmp / "old.sqlite3")
    alice = h.guild.add_member("alice")
    old_id = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)).content)
    old = await h.result_message(old_id)
    old_folder = h.tmp / "artifacts" / (await h.store.get(old_id)).artifact_dir
    await h.stop_bot()

    other = fake.add_guild("Other Club")
    await h.start_bot(db_path=h.tmp / "new.sqlite3")
    bob, carol = other.add_member("bob"), h.guild.add_member("carol")
    new_id = job_id_of((await fake.slash(bob, "morph", from_="a secret", to="a plan", frames=4)).content)
    assert new_id == old_id == 1
    new = await h.result_message(new_id)
    assert old_folder.is_dir() and (await h.store.get(new_id)).artifact_dir != old_folder.name  # no collision

    for cid in old.custom_ids():
        if cid.startswith(("morph:frames:", "morph:refine:")):  # the frame and 🔍 refine menus
            it = await fake.select(carol, old, cid, ["0"])
        else:
            it = await fake.click(carol, old, cid)
        assert it.ephemeral and "There is no morph #1" in it.content, (cid, it.content)
    await fake.react(carol, old, "1️⃣")
    # a custom id of server Other's job, on a message in this server
    here = await bot_message_with_buttons(h, h.channel.id, new.custom_ids()[:1])
    forged = await fake.click(carol, here, new.custom_ids()[0])
    assert forged.ephemeral and "There is no morph #1" in forged.content
    await h.settled()
    assert [j.id for j in await h.store.list_jobs(None, states=["queued", "running", "rendered", "delivered"])] \
        == [new_id]  # no reroll was queued
    assert (await h.store.get(new_id)).deleted_at is None and await h.store.picks(new_id) == []
    assert not [m for m in fake.messages[h.channel.id] if m.id > here.id and not m.ephemeral]
    assert fake.violations == []


async def test_ids_beyond_64_bit_and_unknown_choices_get_a_clean_answer(harness):
    fake, h = harness.fake, harness
    await h.start_bot()
    alice = h.guild.add_member("alice")
    job_id = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)).content)
    await h.result_message(job_id)
    ids = ["morph:pick:99999999999999999999999-00000000:0", "morph:cancel:" + "9" * 40 + "-00000000",
           "morph:delete:" + "9" * 40 + "-00000000", "morph:reroll:" + "9" * 40 + "-00000000",
           "morph:pick:0-00000000:0"]
    old = await bot_message_with_buttons(h, h.channel.id, ids)
    for cid in ids:
        it = await fake.click(alice, old, cid)
        assert it.ephemeral and "There is no morph #" in it.content, (cid, it.content)
    bad = await fake.slash(alice, "morph", from_="a dog", to="a cat", pacing="zigzag", strict=False)
    assert bad.ephemeral and "not a valid value" in bad.content
    assert len(await h.store.list_jobs(None, states=["queued", "running", "rendered", "delivered"])) == 1
    assert fake.violations == []


async def test_reroll_after_the_operator_lowered_max_frames_stays_under_the_new_cap(harness):
    """A server stored max_frames 120 while the bot allowed it; the operator then lowers MORPH_MAX_FRAMES to
    60: the stored value no longer counts, and 🔁 Reroll of a 100-frame morph queues 60 frames, saying so."""
    fake, h = harness.fake, harness
    await h.start_bot(max_frames=120, default_steps=1)
    mod = h.guild.add_member("mod", permissions=["manage_guild"])
    alice = h.guild.add_member("alice")
    assert "max_frames: 120" in (await fake.slash(mod, "morphadmin limits", max_frames=120)).content
    job_id = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=100)).content)
    result = await h.result_message(job_id, timeout=120)
    await h.stop_bot()

    await h.start_bot(max_frames=60, default_steps=1)
    assert "max_frames: 60" in (await fake.slash(mod, "morphadmin limits")).content
    reroll = next(c for c in result.custom_ids() if c.startswith("morph:reroll:"))
    it = await fake.click(alice, result, reroll)
    answer = await it.reply()
    assert not answer.ephemeral and "lowered to this server's limit of 60" in answer.content
    again = await h.store.get(job_id_of(answer.content))
    assert again.request.frames == 60 and again.request.prompts == ["a dog", "a cat"]
    assert fake.violations == []

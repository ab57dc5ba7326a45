"""Scenario 4: /morphadmin is checked by the bot (Discord's default_member_permissions is only a hint),
pause keeps queued jobs queued until resume, and cancel/clear act only inside the admin's own guild."""
from __future__ import annotations

from e2e_helpers import job_id_of


async def test_admin_controls_stay_in_their_guild(harness):
    fake, h = harness.fake, harness
    other = fake.add_guild("Other Club")  # before the bot connects: it arrives in GUILD_CREATE
    await h.start_bot(default_frames=4)
    member = h.guild.add_member("member")
    admin = h.guild.add_member("mod", permissions=["manage_guild"])
    root = h.guild.add_member("root", admin=True)
    other_admin = other.add_member("other-mod", permissions=["manage_guild"])
    other_member = other.add_member("other-member")

    synced = fake.command("morphadmin")
    assert synced["default_member_permissions"] == "32"  # Manage Server: a hint to Discord's client

    # a member without Manage Server is refused by the bot itself
    refused = await fake.slash(member, "morphadmin pause")
    assert refused.command_hidden  # Discord would hide it unless a server admin allowed it
    assert refused.ephemeral and "Manage Server" in refused.content
    assert not await h.store.is_paused(h.guild.id)

    paused = await fake.slash(admin, "morphadmin pause")
    assert paused.ephemeral and "paused" in paused.content.lower()
    assert await h.store.is_paused(h.guild.id)

    # queued jobs stay queued while paused; the other guild is not paused
    first = await fake.slash(member, "morph", from_="a dog", to="a cat")
    second = await fake.slash(root, "morph", from_="a bird", to="a fish")
    elsewhere = await fake.slash(other_member, "morph", from_="a tree", to="a car")
    a, b, c = (job_id_of(i.content) for i in (first, second, elsewhere))
    assert "paused" in first.content
    # The worker takes the oldest job of the guild served least recently: a and b come before c. So once c
    # is delivered the worker has chosen past a and b (no fixed wait that a slow machine could outlast).
    await h.result_message(c, timeout=60)
    assert [(await h.store.get(j)).state for j in (a, b)] == ["queued", "queued"]

    # cancel: an admin of the other guild cannot touch this guild's job; this guild's admin can
    foreign = await fake.slash(other_admin, "morphadmin cancel", job=a)
    assert foreign.ephemeral and "another server" in foreign.content
    assert (await h.store.get(a)).state == "queued"
    cancel = await fake.slash(admin, "morphadmin cancel", job=a)
    assert cancel.ephemeral and f"#{a}" in cancel.content and "ancel" in cancel.content
    assert (await h.store.get(a)).state == "cancelled"
    await fake.wait_for_message(lambda m: m is first.original and "cancelled" in m.content, timeout=10)

    # clear: the other guild's admin clears only their own (empty) queue
    cleared_elsewhere = await fake.slash(other_admin, "morphadmin clear")
    assert cleared_elsewhere.ephemeral and "0" in cleared_elsewhere.content
    assert (await h.store.get(b)).state == "queued"

    # resume: the queued job renders and is delivered
    resumed = await fake.slash(admin, "morphadmin resume")
    assert resumed.ephemeral and not await h.store.is_paused(h.guild.id)
    await h.result_message(b, timeout=60)
    assert (await h.wait_state(b, "delivered")).result_message_id is not None

    # clear in this guild cancels only this guild's queued jobs
    await fake.slash(admin, "morphadmin pause")
    queued = [await fake.slash(member, "morph", from_="one", to="two"),
              await fake.slash(root, "morph", from_="three", to="four")]
    q1, q2 = (job_id_of(i.content) for i in queued)
    cleared = await fake.slash(admin, "morphadmin clear")
    assert cleared.ephemeral and "2" in cleared.content
    assert [(await h.store.get(j)).state for j in (q1, q2)] == ["cancelled", "cancelled"]
    for it in queued:  # each status message says so (the jobs the clear cancelled, as it returned them)
        await fake.wait_for_message(lambda m, it=it: m is it.original and "cancelled" in m.content, timeout=10)

    # the admin actions are audited
    audit = await h.store.audit_log(h.guild.id, limit=20)
    actions = [e["action"] for e in audit]
    assert any("pause" in x for x in actions) and any("clear" in x for x in actions)
    assert all(e["actor_id"] in (admin.id, root.id) for e in audit)

    assert not any(m.pings_anyone for m in fake.all_messages())
    assert fake.violations == []


async def test_admin_ban_limits_stats_list(harness):
    fake, h = harness.fake, harness
    await h.start_bot(default_frames=4)
    mod = h.guild.add_member("mod", permissions=["manage_guild"])
    troll, alice = h.guild.add_member("troll"), h.guild.add_member("alice")

    await fake.slash(mod, "morphadmin pause")
    queued = job_id_of((await fake.slash(troll, "morph", from_="spam", to="more spam")).content)
    ban = await fake.slash(mod, "morphadmin ban", user=troll)  # a user option: resolved data is sent
    assert ban.ephemeral and "1 queued" in ban.content and f"<@{troll.id}>" in ban.content
    assert (await h.store.get(queued)).state == "cancelled"
    banned = await fake.slash(troll, "morph", from_="a dog", to="a cat")
    assert banned.ephemeral and "banned" in banned.content
    unban = await fake.slash(mod, "morphadmin unban", user=troll)
    assert unban.ephemeral and "again" in unban.content
    assert not (await fake.slash(troll, "morph", from_="a dog", to="a cat")).ephemeral

    limits = await fake.slash(mod, "morphadmin limits", max_user_active=1, banned_words="kraken")
    assert limits.ephemeral and "max_user_active: 1" in limits.content and "kraken" in limits.content
    assert not (await fake.slash(alice, "morph", from_="a dog", to="a cat")).ephemeral
    second = await fake.slash(alice, "morph", from_="a bird", to="a fish")
    assert second.ephemeral and "the limit is 1" in second.content
    word = await fake.slash(troll, "morph", from_="a Kraken", to="a cat")
    assert word.ephemeral and "does not allow" in word.content

    listing = await fake.slash(mod, "morphadmin list")
    assert listing.ephemeral and "paused" in listing.content and listing.content.count("• #") == 2
    stats = await fake.slash(mod, "morphadmin stats")
    assert stats.ephemeral and "2 queued" in stats.content
    refused = await fake.slash(alice, "morphadmin stats")
    assert refused.ephemeral and "Manage Server" in refused.content
    assert not any(m.pings_anyone for m in fake.all_messages())
    assert fake.violations == []

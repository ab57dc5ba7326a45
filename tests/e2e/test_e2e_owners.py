"""Bot owners come from the application Discord reports (``GET /oauth2/applications/@me``, parsed by the
real discord.py): for a team-owned application only the team's owner and the accepted admin and developer
members may use /morphadmin in every server; read-only members and pending invitations may not."""
from __future__ import annotations


async def test_only_accepted_admin_and_developer_team_members_are_bot_owners(harness):
    fake, h = harness.fake, harness
    users = {name: fake.add_user(name) for name in
             ("boss", "admin", "dev", "viewer", "invited-admin", "invited-dev", "outsider")}
    fake.set_team([(users["boss"], "admin", "accepted"), (users["admin"], "admin", "accepted"),
                   (users["dev"], "developer", "accepted"), (users["viewer"], "read_only", "accepted"),
                   (users["invited-admin"], "admin", "invited"), (users["invited-dev"], "developer", "invited")],
                  owner=users["boss"])
    await h.start_bot()
    assert h.bot.application.team is not None  # discord.py parsed the fake's team

    # none of them has Manage Server here: only bot owners get through
    members = {name: h.guild.add_member(user) for name, user in users.items()}
    for name, owner in [("boss", True), ("admin", True), ("dev", True), ("viewer", False),
                        ("invited-admin", False), ("invited-dev", False), ("outsider", False)]:
        it = await fake.slash(members[name], "morphadmin stats", everywhere=True)
        assert it.ephemeral, name
        assert ("Manage Server" not in it.content) is owner, (name, it.content)
    assert fake.violations == []


async def test_only_bot_owners_see_the_model_in_stats(harness, tmp_path):
    """The model may be a folder on the server: /morphadmin stats names it to bot owners only."""
    fake, h = harness.fake, harness
    boss = fake.add_user("boss")
    fake.set_team([(boss, "admin", "accepted")], owner=boss)
    await h.start_bot()
    owner, mod = h.guild.add_member(boss), h.guild.add_member("mod", admin=True)
    await fake.slash(mod, "morph", from_="a dog", to="a cat", frames=2)  # the model loads on the first morph
    shown = await fake.slash(owner, "morphadmin stats")
    hidden = await fake.slash(mod, "morphadmin stats")
    assert shown.ephemeral and hidden.ephemeral
    assert "model tiny" in shown.content or "(tiny loads" in shown.content, shown.content
    assert "tiny" not in hidden.content.split("device:")[1], hidden.content

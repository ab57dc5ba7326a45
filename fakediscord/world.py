"""FakeDiscord's part that builds the world: users, guilds, the application's team, DM channels.

``fake.add_guild``, ``fake.add_user``, ``fake.set_team``…; the objects themselves are in
:mod:`fakediscord.objects`. A guild built before the bot connects arrives in GUILD_CREATE; later additions
are dispatched (GUILD_ROLE_CREATE, CHANNEL_CREATE, GUILD_MEMBER_ADD).
"""
from __future__ import annotations

from fakediscord.model import GUILDS, OptionRejected
from fakediscord.objects import FakeChannel, FakeGuild, FakeUser
from fakediscord.state import DiscordState


class World(DiscordState):
    """FakeDiscord's builders and lookups of the world (a mixin: the state lives in FakeDiscord.__init__)."""

    def add_user(self, name: str, locale: str = "en-US") -> FakeUser:
        user = FakeUser(self.ids.next(), name, locale=locale)
        self.users[user.id] = user
        return user

    def set_team(self, members: list[tuple[FakeUser, str, str]], owner: FakeUser | None = None) -> None:
        """Make the application team-owned, as ``GET /oauth2/applications/@me`` then reports it.

        ``members``: (user, role, membership) with role ``"admin"``, ``"developer"`` or ``"read_only"`` and
        membership ``"invited"`` or ``"accepted"``; ``owner`` (default: the first member) is the team's
        ``owner_user_id``. The application's ``owner`` becomes the team's pseudo-user, as on Discord.
        """
        team_id = self.ids.next()
        states = {"invited": 1, "accepted": 2}
        self.app_team = {
            "id": str(team_id), "name": "fake team", "icon": None,
            "owner_user_id": str((owner or members[0][0]).id),
            "members": [{"user": user.payload(), "role": role, "membership_state": states[membership],
                         "permissions": ["*"], "team_id": str(team_id)} for user, role, membership in members],
        }

    def add_guild(self, name: str = "Test Server", *, premium_tier: int = 0,
                  upload_limit: int | None = None, shard: tuple[int, int] | None = None,
                  preferred_locale: str = "en-US") -> FakeGuild:
        """A guild with @everyone, an owner, the bot (with its own role) and a #general channel.

        ``shard=(shard_id, shard_count)`` picks its id so that it lives on that shard (Discord derives the
        shard from the id: ``(guild_id >> 22) % shard_count``)."""
        gid = self.ids.next_on_shard(*shard) if shard is not None else None
        guild = FakeGuild(self, name, premium_tier, upload_limit, guild_id=gid, preferred_locale=preferred_locale)
        self.guilds[guild.id] = guild
        self._dispatch("GUILD_CREATE", guild.payload(), guild_id=guild.id, intent=GUILDS)
        return guild

    def remove_guild(self, guild: FakeGuild) -> None:
        """The bot leaves the guild (kicked, or the guild is deleted): GUILD_DELETE without ``unavailable``;
        the guild's channels and messages are gone for the bot."""
        self.guilds.pop(guild.id, None)
        for cid in guild.channels:
            self.channels.pop(cid, None)
        self._dispatch("GUILD_DELETE", {"id": str(guild.id)}, guild_id=guild.id, intent=GUILDS)

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        for ch in self.channels.values():
            if ch.guild is None and ch.recipient is user:
                return ch
        ch = FakeChannel(self.ids.next(), f"dm-{user.name}", None, 1, recipient=user)
        self.channels[ch.id] = ch
        return ch

    def command(self, name: str, guild: FakeGuild | None = None) -> dict:
        """The synced command called ``name`` (guild commands shadow global ones)."""
        for scope in ([guild.id] if guild else []) + [None]:
            for cmd in self.commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd
        synced = sorted({c["name"] for cmds in self.commands.values() for c in cmds})
        raise OptionRejected(f"/{name} is not a synced command (synced: {synced})")

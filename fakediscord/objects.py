"""What exists in the fake Discord: users, roles, channels, members and guilds.

The objects carry Discord's payload shapes and permission arithmetic; :class:`~fakediscord.world.World`
(``fake.add_guild``, ``fake.add_user``…) builds them. A guild builds its own channels, roles and members
(``guild.add_channel``…) and reaches the fake through :class:`Host`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from fakediscord.model import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_UPLOAD_LIMIT,
    TIER_UPLOAD_LIMITS,
    Clock,
    FakeMessage,
    Snowflakes,
    iso,
    permissions_value,
)


class Host(Protocol):
    """The FakeDiscord as the objects it holds (guilds, interactions) see it: what they read and call.

    :class:`~fakediscord.state.DiscordState`, the base of FakeDiscord's parts, extends it with the rest of
    the shared state. It is declared here, next to the objects, because they must not import the fake or
    its state, which name them."""

    clock: Clock
    ids: Snowflakes
    bot_user: FakeUser
    channels: dict[int, FakeChannel]

    if TYPE_CHECKING:  # defined by FakeDiscord's parts (world.py, gateway.py, messages.py)
        def add_user(self, name: str, locale: str = "en-US") -> FakeUser: ...
        def _guild_event(self, name: str, guild: FakeGuild, data: dict) -> None: ...
        async def wait_for_message(self, predicate: Callable[[FakeMessage], bool], timeout: float = 10.0, *,
                                   existing: bool = True) -> FakeMessage: ...


#: Permission bits by name: what @everyone gets by default and what the REST routes check the bot for.
P = {name: permissions_value(name) for name in (
    "view_channel", "send_messages", "attach_files", "add_reactions", "read_message_history", "manage_messages",
    "embed_links", "use_application_commands")}
EVERYONE_DEFAULT = (P["view_channel"] | P["send_messages"] | P["read_message_history"] | P["add_reactions"]
                    | P["use_application_commands"] | P["attach_files"] | P["embed_links"])


@dataclass(eq=False)
class FakeUser:
    id: int
    name: str
    bot: bool = False
    #: the client language Discord sends as the interaction's ``locale`` (``en-US``, ``ja``, ``fr``…)
    locale: str = "en-US"

    def payload(self) -> dict:
        return {"id": str(self.id), "username": self.name, "global_name": None if self.bot else self.name,
                "discriminator": "0", "avatar": None, "bot": self.bot, "public_flags": 0, "flags": 0,
                "system": False, "banner": None, "accent_color": None, "avatar_decoration_data": None}

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass(eq=False)
class FakeRole:
    id: int
    guild: FakeGuild
    name: str
    permissions: int = 0
    position: int = 1
    mentionable: bool = False
    managed: bool = False

    def payload(self) -> dict:
        return {"id": str(self.id), "name": self.name, "color": 0, "colors": {"primary_color": 0},
                "hoist": False, "icon": None, "unicode_emoji": None, "position": self.position,
                "permissions": str(self.permissions), "managed": self.managed, "mentionable": self.mentionable,
                "flags": 0}


@dataclass(eq=False)
class FakeChannel:
    id: int
    name: str
    guild: FakeGuild | None = None
    type: int = 0  # 0 text, 1 DM
    overwrites: list[dict] = field(default_factory=list)  # {"id", "type": 0 role / 1 member, "allow", "deny"}
    recipient: FakeUser | None = None
    position: int = 0
    #: Discord's age-restricted flag (``nsfw``); a thread has none of its own: it follows its parent
    nsfw: bool = False
    #: a thread's (type 11) channel
    parent: FakeChannel | None = None

    @property
    def is_thread(self) -> bool:
        return self.type in (10, 11, 12)

    def payload(self) -> dict:
        if self.guild is None:
            return {"id": str(self.id), "type": 1, "last_message_id": None, "flags": 0,
                    "recipients": [self.recipient.payload()] if self.recipient else []}
        if self.is_thread:
            assert self.parent is not None
            return {"id": str(self.id), "type": self.type, "guild_id": str(self.guild.id), "name": self.name,
                    "parent_id": str(self.parent.id), "owner_id": str(self.guild.owner_id), "last_message_id": None,
                    "rate_limit_per_user": 0, "flags": 0, "message_count": 0, "member_count": 1,
                    "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False,
                                        "archive_timestamp": "2026-01-01T00:00:00+00:00"}}
        return {"id": str(self.id), "type": self.type, "guild_id": str(self.guild.id), "name": self.name,
                "position": self.position, "parent_id": None, "topic": None, "nsfw": self.nsfw,
                "last_message_id": None, "rate_limit_per_user": 0, "flags": 0,
                "permission_overwrites": [{"id": str(o["id"]), "type": o["type"], "allow": str(o.get("allow", 0)),
                                           "deny": str(o.get("deny", 0))} for o in self.overwrites]}

    def overwrite(self, target: FakeRole | FakeMember, *, allow=0, deny=0) -> None:
        """Add a permission overwrite for a role or member (names or ints)."""
        self.overwrites.append({"id": target.id, "type": 0 if isinstance(target, FakeRole) else 1,
                                "allow": permissions_value(allow), "deny": permissions_value(deny)})

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"


@dataclass(eq=False)
class FakeMember:
    user: FakeUser
    guild: FakeGuild
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: float = 0.0

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def base_permissions(self) -> int:
        g = self.guild
        if g.owner_id == self.id:
            return ALL_PERMISSIONS
        perms = g.everyone.permissions
        for rid in self.role_ids:
            perms |= g.roles[rid].permissions
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def permissions_in(self, channel: FakeChannel | None) -> int:
        """Discord's computed permissions: roles, administrator → all bits, then channel overwrites."""
        perms = self.base_permissions()
        if perms == ALL_PERMISSIONS or channel is None:
            return perms
        if channel.is_thread and channel.parent is not None:  # a thread has its parent's overwrites
            channel = channel.parent
        ows = {(o["type"], o["id"]): o for o in channel.overwrites}
        if (o := ows.get((0, self.guild.id))):
            perms = (perms & ~o["deny"]) | o["allow"]
        allow = deny = 0
        for rid in self.role_ids:
            if (o := ows.get((0, rid))):
                allow |= o["allow"]
                deny |= o["deny"]
        perms = (perms & ~deny) | allow
        if (o := ows.get((1, self.id))):
            perms = (perms & ~o["deny"]) | o["allow"]
        return perms

    def payload(self, *, with_user: bool = True, permissions_in: FakeChannel | None | Literal[False] = False) -> dict:
        out: dict[str, Any] = {
            "roles": [str(r) for r in self.role_ids], "nick": self.nick, "avatar": None, "banner": None,
            "joined_at": iso(self.joined_at), "premium_since": None, "deaf": False, "mute": False,
            "flags": 0, "pending": False, "communication_disabled_until": None}
        if with_user:
            out["user"] = self.user.payload()
        if permissions_in is not False:
            out["permissions"] = str(self.permissions_in(permissions_in or None))
        return out


class FakeGuild:
    """A guild with an @everyone role (id = guild id), channels, roles and members.

    Build it before the bot connects (it arrives in GUILD_CREATE); later additions are dispatched as
    GUILD_ROLE_CREATE / CHANNEL_CREATE / GUILD_MEMBER_ADD.
    """

    def __init__(self, fake: Host, name: str, premium_tier: int = 0, upload_limit: int | None = None,
                 guild_id: int | None = None, preferred_locale: str = "en-US"):
        self.fake = fake
        self.id = guild_id or fake.ids.next()
        self.name = name
        #: the server's language (Server Settings → Community): GUILD_CREATE's ``preferred_locale`` and every
        #: interaction's ``guild_locale``
        self.preferred_locale = preferred_locale
        self.premium_tier = premium_tier
        self.upload_limit = upload_limit or TIER_UPLOAD_LIMITS.get(premium_tier, DEFAULT_UPLOAD_LIMIT)
        self.roles: dict[int, FakeRole] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.members: dict[int, FakeMember] = {}
        self.everyone = FakeRole(self.id, self, "@everyone", EVERYONE_DEFAULT, position=0)
        self.roles[self.id] = self.everyone
        owner = fake.add_user(f"{name.lower().replace(' ', '-')}-owner")
        self.owner_id = owner.id
        self.owner = self.add_member(owner)
        self.bot_role = self.add_role(fake.bot_user.name, DEFAULT_BOT_PERMISSIONS, managed=True)
        self.bot_member = self.add_member(fake.bot_user, roles=[self.bot_role])
        self.default_channel = self.add_channel("general")

    # builders -------------------------------------------------------------------------------------------
    def add_channel(self, name: str, *, type: int = 0, nsfw: bool = False) -> FakeChannel:
        """A text channel; ``nsfw``: Discord's age-restricted flag."""
        ch = FakeChannel(self.fake.ids.next(), name, self, type, position=len(self.channels), nsfw=nsfw)
        self.channels[ch.id] = ch
        self.fake.channels[ch.id] = ch
        self.fake._guild_event("CHANNEL_CREATE", self, ch.payload())
        return ch

    def add_thread(self, parent: FakeChannel, name: str) -> FakeChannel:
        """A public thread (type 11) in ``parent``: it has no ``nsfw`` flag of its own, as on Discord."""
        ch = FakeChannel(self.fake.ids.next(), name, self, 11, position=0, parent=parent)
        self.channels[ch.id] = ch
        self.fake.channels[ch.id] = ch
        self.fake._guild_event("THREAD_CREATE", self, {**ch.payload(), "newly_created": True})
        return ch

    def add_role(self, name: str, permissions=0, *, mentionable: bool = False, managed: bool = False) -> FakeRole:
        role = FakeRole(self.fake.ids.next(), self, name, permissions_value(permissions), len(self.roles),
                        mentionable, managed)
        self.roles[role.id] = role
        self.fake._guild_event("GUILD_ROLE_CREATE", self, {"guild_id": str(self.id), "role": role.payload()})
        return role

    def add_member(self, user: FakeUser | str, *, roles: Iterable[FakeRole] = (), permissions=None,
                   admin: bool = False, nick: str | None = None, locale: str = "en-US") -> FakeMember:
        """Add a member; ``permissions=["manage_guild"]`` or ``admin=True`` give them a role of their own.
        ``locale``: their client's language (the interactions' ``locale``) when ``user`` is a new name."""
        if isinstance(user, str):
            user = self.fake.add_user(user, locale)
        role_ids = [r.id for r in roles]
        if admin or permissions is not None:
            perms = permissions_value(permissions) | (ADMINISTRATOR if admin else 0)
            role_ids.append(self.add_role(f"{user.name}-role", perms).id)
        member = FakeMember(user, self, role_ids, nick, joined_at=self.fake.clock.time())
        self.members[user.id] = member
        self.fake._guild_event("GUILD_MEMBER_ADD", self, {**member.payload(), "guild_id": str(self.id)})
        return member

    def channel(self, name: str) -> FakeChannel:
        return next(c for c in self.channels.values() if c.name == name)

    def member(self, name_or_id: str | int) -> FakeMember:
        return next(m for m in self.members.values() if name_or_id in (m.id, m.name))

    def payload(self) -> dict:
        return {
            "id": str(self.id), "name": self.name, "icon": None, "splash": None, "discovery_splash": None,
            "banner": None, "description": None, "owner_id": str(self.owner_id), "afk_channel_id": None,
            "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "premium_tier": self.premium_tier,
            "premium_subscription_count": 0, "preferred_locale": self.preferred_locale, "features": [], "emojis": [],
            "stickers": [], "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
            "vanity_url_code": None, "max_members": 500000, "max_video_channel_users": 25,
            "roles": [r.payload() for r in self.roles.values()],
            "joined_at": iso(self.fake.clock.time()), "large": False, "unavailable": False,
            "member_count": len(self.members), "members": [m.payload() for m in self.members.values()],
            "channels": [c.payload() for c in self.channels.values() if not c.is_thread],
            "threads": [c.payload() for c in self.channels.values() if c.is_thread], "presences": [],
            "voice_states": [], "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
        }

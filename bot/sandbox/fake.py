"""The fake Discord server: REST v10 + gateway websocket on loopback, Discord's rules, and a test API.

See :mod:`bot.sandbox` for the public API. Everything runs on the caller's asyncio loop.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import inspect
import json
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import aiohttp
from aiohttp import web

from bot.sandbox.model import (
    ADMINISTRATOR, ALL_PERMISSIONS, DEFAULT_BOT_PERMISSIONS, DEFAULT_UPLOAD_LIMIT, EPHEMERAL, INTERACTION_DEADLINE_S,
    INTERACTION_TOKEN_TTL_S, IS_COMPONENTS_V2, LOADING, TIER_UPLOAD_LIMITS, ApiError, Attachment, Clock, FakeMessage,
    Snowflakes, compute_pings, emoji_payload, identify_shard, iso, permissions_value, shard_of,
)
from bot.sandbox.rules import MAX_FILES, check_not_empty, validate_commands, validate_message_fields

log = logging.getLogger("bot.sandbox")

P = {name: permissions_value(name) for name in (
    "view_channel", "send_messages", "attach_files", "add_reactions", "read_message_history", "manage_messages",
    "embed_links", "use_application_commands")}
EVERYONE_DEFAULT = (P["view_channel"] | P["send_messages"] | P["read_message_history"] | P["add_reactions"]
                    | P["use_application_commands"] | P["attach_files"] | P["embed_links"])

# gateway intents that gate events (https://discord.com/developers/docs/events/gateway#gateway-intents)
GUILDS, GUILD_MEMBERS = 1 << 0, 1 << 1
GUILD_MESSAGES, GUILD_MESSAGE_REACTIONS = 1 << 9, 1 << 10
DIRECT_MESSAGES, DIRECT_MESSAGE_REACTIONS, MESSAGE_CONTENT = 1 << 12, 1 << 13, 1 << 15



async def eventually(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` (plain or async) until it returns something true or ``timeout`` seconds pass;
    return its last value, so the caller asserts on exactly what it needs."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(interval)

class OptionRejected(ValueError):
    """Discord's client would refuse to send this command (missing/unknown option, out of range, …)."""


class InteractionFailed(AssertionError):
    """The bot did not answer an interaction in time (Discord shows "This interaction failed")."""


# ---------------------------------------------------------------------------------------------------------
# Guild building blocks
# ---------------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class FakeUser:
    id: int
    name: str
    bot: bool = False

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
    guild: "FakeGuild"
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
    guild: "FakeGuild | None" = None
    type: int = 0  # 0 text, 1 DM
    overwrites: list[dict] = field(default_factory=list)  # {"id", "type": 0 role / 1 member, "allow", "deny"}
    recipient: FakeUser | None = None
    position: int = 0

    def payload(self) -> dict:
        if self.guild is None:
            return {"id": str(self.id), "type": 1, "last_message_id": None, "flags": 0,
                    "recipients": [self.recipient.payload()] if self.recipient else []}
        return {"id": str(self.id), "type": self.type, "guild_id": str(self.guild.id), "name": self.name,
                "position": self.position, "parent_id": None, "topic": None, "nsfw": False,
                "last_message_id": None, "rate_limit_per_user": 0, "flags": 0,
                "permission_overwrites": [{"id": str(o["id"]), "type": o["type"], "allow": str(o.get("allow", 0)),
                                           "deny": str(o.get("deny", 0))} for o in self.overwrites]}

    def overwrite(self, target: "FakeRole | FakeMember", *, allow=0, deny=0) -> None:
        """Add a permission overwrite for a role or member (names or ints)."""
        self.overwrites.append({"id": target.id, "type": 0 if isinstance(target, FakeRole) else 1,
                                "allow": permissions_value(allow), "deny": permissions_value(deny)})

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"


@dataclass(eq=False)
class FakeMember:
    user: FakeUser
    guild: "FakeGuild"
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

    def payload(self, *, with_user: bool = True, permissions_in: FakeChannel | None | bool = False) -> dict:
        out = {"roles": [str(r) for r in self.role_ids], "nick": self.nick, "avatar": None, "banner": None,
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

    def __init__(self, fake: "FakeDiscord", name: str, premium_tier: int = 0, upload_limit: int | None = None,
                 guild_id: int | None = None):
        self.fake = fake
        self.id = guild_id or fake.ids.next()
        self.name = name
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
    def add_channel(self, name: str, *, type: int = 0) -> FakeChannel:
        ch = FakeChannel(self.fake.ids.next(), name, self, type, position=len(self.channels))
        self.channels[ch.id] = ch
        self.fake.channels[ch.id] = ch
        self.fake._guild_event("CHANNEL_CREATE", self, ch.payload())
        return ch

    def add_role(self, name: str, permissions=0, *, mentionable: bool = False, managed: bool = False) -> FakeRole:
        role = FakeRole(self.fake.ids.next(), self, name, permissions_value(permissions), len(self.roles),
                        mentionable, managed)
        self.roles[role.id] = role
        self.fake._guild_event("GUILD_ROLE_CREATE", self, {"guild_id": str(self.id), "role": role.payload()})
        return role

    def add_member(self, user: FakeUser | str, *, roles: Iterable[FakeRole] = (), permissions=None,
                   admin: bool = False, nick: str | None = None) -> FakeMember:
        """Add a member; ``permissions=["manage_guild"]`` or ``admin=True`` give them a role of their own."""
        if isinstance(user, str):
            user = self.fake.add_user(user)
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
            "premium_subscription_count": 0, "preferred_locale": "en-US", "features": [], "emojis": [],
            "stickers": [], "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
            "vanity_url_code": None, "max_members": 500000, "max_video_channel_users": 25,
            "roles": [r.payload() for r in self.roles.values()],
            "joined_at": iso(self.fake.clock.time()), "large": False, "unavailable": False,
            "member_count": len(self.members), "members": [m.payload() for m in self.members.values()],
            "channels": [c.payload() for c in self.channels.values()], "threads": [], "presences": [],
            "voice_states": [], "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": [],
        }


# ---------------------------------------------------------------------------------------------------------
# Interactions
# ---------------------------------------------------------------------------------------------------------
class FakeInteraction:
    """One injected interaction. ``await it`` waits for the bot's first response (raises InteractionFailed).

    After that: ``response_type`` (4 message, 5 deferred, 6 deferred update, 7 update, 8 autocomplete,
    9 modal), ``response`` (the callback's ``data``), ``latency`` (seconds from dispatch to callback),
    ``ephemeral``, ``original`` (the response message, or for 6/7 the message holding the component) and
    ``followups``. ``await it.reply()`` waits until a deferred response has real content.
    """

    def __init__(self, fake: "FakeDiscord", itype: int, user: FakeUser, member: FakeMember | None,
                 channel: FakeChannel, data: dict, message: FakeMessage | None, upload_limit: int):
        self.fake = fake
        self.id = fake.ids.next()
        self.token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(24)
        self.type = itype
        self.user, self.member, self.channel, self.data = user, member, channel, data
        self.guild = member.guild if member else None
        self.message = message
        self.upload_limit = upload_limit
        self.created_at = fake.clock.time()
        self.sent_at = fake.clock.monotonic()
        self.expires_at = self.created_at + INTERACTION_TOKEN_TTL_S
        self.state = "pending"  # → "responded" | "failed"
        self.failure: str | None = None
        self.response_type: int | None = None
        self.response: dict | None = None
        self.latency: float | None = None
        self.original: FakeMessage | None = None
        self.followups: list[FakeMessage] = []
        self.command_hidden = False  # member lacks the command's default_member_permissions
        self._done: asyncio.Future = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        what = self.data.get("name") or self.data.get("custom_id")
        return f"<FakeInteraction {self.id} {what!r} by {self.user.name} {self.state} type={self.response_type}>"

    @property
    def ephemeral(self) -> bool:
        return bool(self.original is not None and self.original.ephemeral) if self.response_type in (4, 5) else False

    @property
    def content(self) -> str | None:
        """The visible text of the response: the original message, else the last followup."""
        msg = self.original if self.response_type in (4, 5) else (self.followups[-1] if self.followups else None)
        return None if msg is None else msg.content

    def __await__(self):
        return self.wait().__await__()

    async def wait(self, timeout: float | None = None) -> "FakeInteraction":
        """Wait for the first response; raise InteractionFailed if Discord's 3 s deadline passed."""
        timeout = timeout if timeout is not None else INTERACTION_DEADLINE_S + 2
        try:
            await asyncio.wait_for(asyncio.shield(self._done), timeout)
        except asyncio.TimeoutError:
            raise InteractionFailed(f"{self!r}: no response within {timeout} s") from None
        if self.state == "failed":
            raise InteractionFailed(f"{self!r}: {self.failure}")
        return self

    async def reply(self, timeout: float = 30.0) -> FakeMessage:
        """The message the user sees: the original response once it is no longer "thinking", else a followup."""
        await self.wait()

        def ready(m: FakeMessage) -> bool:
            if m is self.original and self.response_type in (4, 5):
                return not m.loading
            return m in self.followups

        if self.original is not None and self.response_type in (4, 5) and not self.original.loading:
            return self.original
        if self.followups:
            return self.followups[0]
        return await self.fake.wait_for_message(ready, timeout)


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------
@dataclass
class UploadedFile:
    name: str  # form field, e.g. "files[0]"
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class RecordedRequest:
    method: str
    path: str  # after /api/v10, decoded
    query: dict
    json: Any
    files: list[UploadedFile]
    at: float
    status: int = 0
    injected: bool = False  # answered by fail_route()


@dataclass
class FaultRule:
    """Answer matching requests with ``status`` (or only delay them) the next ``times`` times."""

    method: str
    pattern: re.Pattern
    status: int | None
    times: int | None
    retry_after: float | None = None
    body: dict | None = None
    delay: float = 0.0
    apply: bool = False  # process the request first, then answer with the error (lost response)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.times is None or self.hits < self.times) and self.method in ("*", method) \
            and self.pattern.search(path) is not None


@dataclass
class RateLimit:
    """A Discord-style bucket: ``limit`` requests per ``per`` seconds for each value of the pattern's first
    group (its "major parameter", e.g. the channel id), or for all matching requests without a group."""

    method: str
    pattern: re.Pattern
    limit: int
    per: float
    bucket: str
    limited: int = 0  # requests answered 429
    windows: dict = field(default_factory=dict)  # key -> [reset_at (fake monotonic), used]

    def match(self, method: str, path: str):
        if self.method not in ("*", method):
            return None
        m = self.pattern.search(path)
        if m is None:
            return None
        return m.group(1) if m.groups() else "*"


@dataclass
class _Req:
    method: str
    path: str
    query: Any
    json: Any
    files: list[UploadedFile]
    headers: Any


class GatewaySession:
    """An identified gateway session; it outlives a dropped connection until it is resumed or invalidated.

    ``shard`` is IDENTIFY's ``(shard_id, shard_count)``, or None for an unsharded session, which gets the
    events of every guild. ``fake.sessions`` lists the live ones.
    """

    def __init__(self, sid: str, intents: int, shard: tuple[int, int] | None):
        self.id, self.intents, self.shard = sid, intents, shard
        self.seq = 0
        self.log: collections.deque = collections.deque(maxlen=20000)  # (seq, frame text) for RESUME
        self.conn: _Conn | None = None

    def __repr__(self) -> str:
        return f"<GatewaySession {self.id[:8]} shard={self.shard} connected={self.connected}>"

    @property
    def connected(self) -> bool:
        return self.conn is not None

    def owns(self, guild_id: int | None) -> bool:
        """Discord sends a guild's events to every session of the guild's shard, DMs (``None``) to shard 0's."""
        return self.shard is None or shard_of(guild_id, self.shard[1]) == self.shard[0]

    def received(self, event: str | None = None) -> list[dict]:
        """The ``d`` of the dispatches sent to this session (as far as the replay log reaches), oldest first;
        only ``event`` ones when given."""
        frames = (json.loads(text) for _, text in self.log)
        return [f["d"] for f in frames if event in (None, f["t"])]


class _Conn:
    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.session: GatewaySession | None = None
        self.dropped = False
        self.writer: asyncio.Task | None = None


def _option_names(kwargs: dict) -> dict:
    """Keyword options → option names: a trailing underscore is removed (``from_`` → ``from``)."""
    return {k[:-1] if k.endswith("_") else k: v for k, v in kwargs.items()}


def _command_data(cmd: dict, chain: list[dict], options: list[dict]) -> dict:
    """An application command interaction's ``data``: ``options`` wrapped in the subcommand ``chain``."""
    for sub in reversed(chain):
        options = [{"type": sub["type"], "name": sub["name"], "options": options}]
    data = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": options}
    if cmd.get("guild_id"):
        data["guild_id"] = cmd["guild_id"]
    return data


def _json_response(status: int, obj: Any, headers: dict | None = None) -> web.Response:
    # discord.py parses JSON only when Content-Type is exactly "application/json".
    return web.Response(status=status, body=json.dumps(obj).encode(),
                        headers={"Content-Type": "application/json", **(headers or {})})


# ---------------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------------
class FakeDiscord:
    """A small Discord: REST v10 and the gateway on 127.0.0.1, with the rules a bot must follow."""

    def __init__(self, *, bot_name: str = "morph-bot") -> None:
        self.clock = Clock()
        self.clock._listeners.append(self._check_deadlines)
        self.ids = Snowflakes(self.clock)
        self.bot_user = FakeUser(self.ids.next(), bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.bot_token = (base64.urlsafe_b64encode(str(self.bot_user.id).encode()).decode().rstrip("=")
                          + ".fake." + secrets.token_urlsafe(27))
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user}
        #: the application's owner (a bot owner for the bot; in no guild unless a test adds them)
        self.app_owner = self.add_user("app-developer")
        #: the application's team (see :meth:`set_team`); None = owned by ``app_owner`` alone
        self.app_team: dict | None = None
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        #: synced application commands: None → global list, guild id → that guild's list
        self.commands: dict[int | None, list[dict]] = {}
        self.requests: list[RecordedRequest] = []
        self.unknown_routes: list[tuple[str, str]] = []
        #: Discord rules the bot broke: {"rule", "method", "path", "status", "code", "message"}
        self.violations: list[dict] = []
        self.interactions: dict[int, FakeInteraction] = {}
        self.gateway_stats = collections.Counter()
        self._messages: dict[int, FakeMessage] = {}
        self._by_channel: dict[int, list[FakeMessage]] = collections.defaultdict(list)
        self._attachments: dict[int, Attachment] = {}
        self._faults: list[FaultRule] = []
        self._limits: list[RateLimit] = []
        self._sessions: dict[str, GatewaySession] = {}
        #: ``shards`` in the answer to GET /gateway/bot: the count discord.py's AutoShardedClient runs
        #: when it is given no shard_count
        self.recommended_shards = 1
        self._conns: set[_Conn] = set()
        self._subscribers: list[asyncio.Queue] = []
        self._waiters: list[tuple[Callable[[FakeMessage], bool], asyncio.Future]] = []
        self._runner: web.AppRunner | None = None
        self._routes = self._route_table()
        self.host, self.port = "127.0.0.1", 0

    # lifecycle ------------------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> "FakeDiscord":
        app = web.Application(client_max_size=512 * 1024 * 1024)
        app.router.add_route("GET", "/gateway", self._gateway)
        app.router.add_route("GET", "/attachments/{aid}/{filename}", self._serve_attachment)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host, self.port = host, site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for conn in list(self._conns):
            conn.dropped = True
            await conn.ws.close(code=1001)
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        for _, fut in self._waiters:
            if not fut.done():
                fut.cancel()

    async def __aenter__(self) -> "FakeDiscord":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """Value for ``discord.http.Route.BASE`` / DISCORD_API_BASE."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """Value for ``DiscordWebSocket.DEFAULT_GATEWAY`` / DISCORD_GATEWAY_URL (also sent as resume URL)."""
        return f"ws://{self.host}:{self.port}/gateway"

    # builders -------------------------------------------------------------------------------------------
    def add_user(self, name: str) -> FakeUser:
        user = FakeUser(self.ids.next(), name)
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
                  upload_limit: int | None = None, shard: tuple[int, int] | None = None) -> FakeGuild:
        """A guild with @everyone, an owner, the bot (with its own role) and a #general channel.

        ``shard=(shard_id, shard_count)`` picks its id so that it lives on that shard (Discord derives the
        shard from the id: ``(guild_id >> 22) % shard_count``)."""
        gid = self.ids.next_on_shard(*shard) if shard is not None else None
        guild = FakeGuild(self, name, premium_tier, upload_limit, guild_id=gid)
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

    # queries --------------------------------------------------------------------------------------------
    @property
    def messages(self) -> dict[int, list[FakeMessage]]:
        """Live messages per channel id, oldest first (ephemeral ones included, flagged ``ephemeral``)."""
        return {cid: [m for m in msgs if not m.deleted] for cid, msgs in self._by_channel.items()}

    def message(self, message_id: int | FakeMessage) -> FakeMessage:
        return self._messages[int(getattr(message_id, "id", message_id))]

    def all_messages(self, *, include_deleted: bool = False) -> list[FakeMessage]:
        return [m for m in self._messages.values() if include_deleted or not m.deleted]

    def attachment_bytes(self, attachment_id: int) -> bytes:
        return self._attachments[int(attachment_id)].data

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        rx = re.compile(path_regex)
        return [r for r in self.requests if method in ("*", r.method) and rx.search(r.path)]

    def command(self, name: str, guild: FakeGuild | None = None) -> dict:
        """The synced command called ``name`` (guild commands shadow global ones)."""
        for scope in ([guild.id] if guild else []) + [None]:
            for cmd in self.commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == 1:
                    return cmd
        synced = sorted({c["name"] for cmds in self.commands.values() for c in cmds})
        raise OptionRejected(f"/{name} is not a synced command (synced: {synced})")

    @property
    def sessions(self) -> list[GatewaySession]:
        """Identified gateway sessions that are still live or resumable, oldest first."""
        return list(self._sessions.values())

    @property
    def connected(self) -> bool:
        """Some session is connected right now."""
        return any(s.connected for s in self._sessions.values())

    @property
    def connected_shards(self) -> set[tuple[int, int]]:
        """``(shard_id, shard_count)`` of every connected sharded session."""
        return {s.shard for s in self._sessions.values() if s.connected and s.shard is not None}

    async def wait_until_ready(self, timeout: float = 30.0, *, commands: bool = True, sessions: int = 1,
                               shard_count: int | None = None) -> None:
        """Wait until ``sessions`` gateway sessions are connected (with ``shard_count``: until every shard
        0..shard_count-1 of that count is) and, by default, commands were synced."""
        def ready() -> bool:
            connected = sum(s.connected for s in self._sessions.values())
            shards = shard_count is None or self.connected_shards >= {(i, shard_count) for i in range(shard_count)}
            return connected >= sessions and shards and bool(self.commands or not commands)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            if loop.time() > deadline:
                raise TimeoutError(f"bot not ready after {timeout} s (sessions={self.sessions}, "
                                   f"wanted sessions={sessions} shard_count={shard_count}, "
                                   f"commands={list(self.commands)}, unknown_routes={self.unknown_routes})")
            await asyncio.sleep(0.02)

    async def wait_for_message(self, predicate: Callable[[FakeMessage], bool], timeout: float = 10.0, *,
                               existing: bool = True) -> FakeMessage:
        """First message (created, edited or deleted) for which ``predicate(message)`` is true.

        With ``existing=True`` messages already there are checked first (newest first). Deleted ones count
        too, on both paths (``m.deleted`` is set): add ``not m.deleted`` to the predicate to skip them.
        """
        if existing:
            for m in reversed(list(self._messages.values())):
                if predicate(m):
                    return m
        fut = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            recent = [(m.id, m.content[:80], [a.filename for a in m.attachments])
                      for m in list(self._messages.values())[-5:]]
            raise TimeoutError(f"no matching message within {timeout} s; last messages: {recent}; "
                               f"violations: {self.violations[-3:]}") from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def subscribe(self) -> asyncio.Queue:
        """A queue of event dicts (see the module docstring of bot.sandbox); call unsubscribe() when done."""
        q: asyncio.Queue = asyncio.Queue()
        self._subscribers.append(q)
        return q

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    # fault injection ------------------------------------------------------------------------------------
    def fail_route(self, method: str, path_regex: str, status: int, times: int | None = 1,
                   retry_after: float | None = None, *, body: dict | None = None, apply: bool = False) -> FaultRule:
        """Answer the next ``times`` requests matching ``method`` ("*" = any) and ``path_regex`` (searched in
        the path after /api/v10, e.g. r"^/channels/\\d+/messages$") with ``status``. A 429 carries Discord's
        headers and JSON ``retry_after`` (default 0.5 s), so discord.py's own rate-limit handling retries.
        ``apply=True`` performs the request first and then answers with the error (a lost response)."""
        if status == 429 and retry_after is None:
            retry_after = 0.5
        rule = FaultRule(method.upper(), re.compile(path_regex), status, times, retry_after, body, apply=apply)
        self._faults.append(rule)
        return rule

    def delay_route(self, method: str, path_regex: str, seconds: float, times: int | None = None) -> FaultRule:
        """Make matching requests take ``seconds`` longer (a slow Discord)."""
        rule = FaultRule(method.upper(), re.compile(path_regex), None, times, delay=seconds)
        self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        self._faults.clear()

    def rate_limit(self, method: str, path_regex: str, limit: int, per: float) -> RateLimit:
        r"""Enforce a rate limit like Discord's: answers carry X-RateLimit-* headers (so discord.py waits
        before it runs out), and a request over the limit gets a 429 with ``retry_after``. The first group of
        ``path_regex`` is the bucket's major parameter, e.g. ``rate_limit("POST", r"^/channels/(\d+)/messages$",
        5, 5.0)`` is 5 messages per 5 s per channel. ``rule.limited`` counts the 429s."""
        rule = RateLimit(method.upper(), re.compile(path_regex), int(limit), float(per),
                         bucket="rl" + secrets.token_hex(6))
        self._limits.append(rule)
        return rule

    def use_discord_rate_limits(self) -> list[RateLimit]:
        """The buckets a bot commonly meets (Discord does not publish exact numbers): 5 messages and 5 edits
        per 5 s per channel, 1 reaction per 0.25 s per channel, 5 requests per 2 s per webhook token."""
        return [
            self.rate_limit("POST", r"^/channels/(\d+)/messages$", 5, 5.0),
            self.rate_limit("PATCH", r"^/channels/(\d+)/messages/\d+$", 5, 5.0),
            self.rate_limit("DELETE", r"^/channels/(\d+)/messages/\d+$", 5, 5.0),
            self.rate_limit("PUT", r"^/channels/(\d+)/messages/\d+/reactions/", 1, 0.25),
            self.rate_limit("*", r"^/webhooks/\d+/([^/]+)", 5, 2.0),
        ]

    @property
    def invalid_requests(self) -> int:
        """Answers Discord counts toward its Cloudflare ban (10,000 per 10 minutes): 401, 403 and 429."""
        return sum(1 for r in self.requests if r.status in (401, 403, 429))

    def _take_rate_limits(self, method: str, path: str) -> tuple[web.Response | None, dict]:
        headers: dict = {}
        now = self.clock.monotonic()
        for rule in self._limits:
            key = rule.match(method, path)
            if key is None:
                continue
            window = rule.windows.get(key)
            if window is None or now >= window[0]:
                window = rule.windows[key] = [now + rule.per, 0]
            reset_after = max(0.0, window[0] - now)
            if window[1] >= rule.limit:
                rule.limited += 1
                return self._rate_limited(reset_after, rule.limit, rule.bucket), {}
            window[1] += 1
            headers = self._rate_limit_headers(rule.limit, rule.limit - window[1], reset_after, rule.bucket)
        return None, headers

    def _rate_limit_headers(self, limit: int, remaining: int, reset_after: float, bucket: str) -> dict:
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{self.clock.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}", "X-RateLimit-Bucket": bucket}

    def _rate_limited(self, retry_after: float, limit: int, bucket: str, body: dict | None = None) -> web.Response:
        """Discord's 429: Retry-After (whole seconds), X-RateLimit-* headers and ``retry_after`` in the body."""
        ra = round(retry_after, 3)
        headers = {"Retry-After": str(max(1, math.ceil(ra))), **self._rate_limit_headers(limit, 0, ra, bucket),
                   "X-RateLimit-Scope": "user", "Via": "1.1 google"}
        body = body or {"message": "You are being rate limited.", "retry_after": ra, "global": False}
        return _json_response(429, body, headers)

    async def drop_gateway(self, mode: str = "close", *, session: GatewaySession | str | None = None,
                           shard: int | None = None) -> int:
        """Cut the bot's gateway connection(s): all, one ``session`` (or its id), or those of shard id
        ``shard`` (an unsharded session is shard 0, as on Discord). ``close``: close code 4000, the client
        RESUMEs and gets what it missed; ``reconnect``: op 7 RECONNECT; ``invalidate``: op 9 (not
        resumable), the client IDENTIFYs again and events sent meanwhile are lost, as on Discord. Returns
        how many connections were cut."""
        sid = getattr(session, "id", session)
        n = 0
        for conn in list(self._conns):
            if conn.session is None or sid not in (None, conn.session.id) \
                    or (shard is not None and (conn.session.shard or (0, 1))[0] != shard):
                continue
            n += 1
            self.gateway_stats["drops"] += 1
            if mode == "close":
                conn.dropped = True
                self._detach(conn)
                await conn.ws.close(code=4000, message=b"fake-discord: dropped")
            elif mode == "reconnect":
                await conn.ws.send_str(json.dumps({"op": 7, "d": None, "s": None, "t": None}))
            elif mode == "invalidate":
                self._sessions.pop(conn.session.id, None)
                self._detach(conn)
                await conn.ws.send_str(json.dumps({"op": 9, "d": False, "s": None, "t": None}))
            else:
                raise ValueError(f"unknown mode {mode!r}")
        self._emit({"type": "gateway", "state": "dropped", "mode": mode, "connections": n})
        return n

    # test API: users acting -----------------------------------------------------------------------------
    def slash(self, user: FakeMember | FakeUser, name: str, /, *, in_channel: FakeChannel | None = None,
              upload_limit: int | None = None, strict: bool = True, options: dict | None = None,
              **kwargs: Any) -> FakeInteraction:
        """``user`` runs ``/name`` (``"morphadmin pause"`` for subcommands). Keyword options map to option
        names with a trailing underscore removed (``from_="dog"`` → ``from``); ``options={...}`` passes names
        verbatim. With ``strict`` the options are checked as Discord's client does (required, type, choices,
        min/max value and length) and OptionRejected is raised instead of sending. ``user`` and ``name`` are
        positional-only, so options called "user" or "name" work. Returns the interaction; ``await`` it for
        the first response."""
        guild, channel, cmd, target, chain = self._resolve_command(user, name, in_channel)
        given = {**_option_names(kwargs), **(options or {})}
        resolved: dict = {}
        built = self._build_options(name, target, given, strict, resolved, guild)
        data = _command_data(cmd, chain, built)
        if resolved:
            data["resolved"] = resolved
        it = self._inject(2, user, channel, data, None, upload_limit)
        dmp = cmd.get("default_member_permissions")
        if isinstance(user, FakeMember) and dmp is not None:
            need = int(dmp)
            it.command_hidden = (user.permissions_in(channel) & need) != need
        return it

    def autocomplete(self, user: FakeMember | FakeUser, name: str, focused: str, value: str = "", /, *,
                     in_channel: FakeChannel | None = None, **kwargs: Any) -> FakeInteraction:
        """``user`` is typing ``value`` into option ``focused`` of ``/name``: an autocomplete interaction
        (type 4). Keyword options are the ones already filled in, named as for :meth:`slash` (not checked:
        the user is still typing). ``await`` it; the offered choices are ``it.response["choices"]``."""
        guild, channel, cmd, target, chain = self._resolve_command(user, name, in_channel)
        declared = {o["name"]: o for o in target.get("options") or []}
        if focused not in declared or not declared[focused].get("autocomplete"):
            raise OptionRejected(f"/{name} option {focused!r} does not autocomplete")
        built = self._build_options(name, target, _option_names(kwargs), False, {}, guild)
        built.append({"type": declared[focused]["type"], "name": focused, "value": value, "focused": True})
        return self._inject(4, user, channel, _command_data(cmd, chain, built), None, None)

    def _resolve_command(self, user: FakeMember | FakeUser, name: str, in_channel: FakeChannel | None
                         ) -> tuple[FakeGuild | None, FakeChannel, dict, dict, list[dict]]:
        """Where ``user`` runs ``/name`` and what it runs: ``(guild, channel, command, target, chain)``, where
        ``target`` is the (sub)command whose options are filled in and ``chain`` the subcommand (group)s
        leading to it. Raises OptionRejected where Discord's client would not offer the command."""
        guild = user.guild if isinstance(user, FakeMember) else None
        channel = in_channel or (guild.default_channel if guild else self.dm_channel(user))
        words = name.split()
        cmd = self.command(words[0], guild)
        if guild is None and (cmd.get("dm_permission") is False or 1 not in (cmd.get("contexts") or [0, 1, 2])):
            raise OptionRejected(f"/{words[0]} is a server-only command: Discord does not offer it in DMs")
        target, chain = cmd, []
        for word in words[1:]:
            sub = next((o for o in target.get("options") or [] if o["name"] == word and o["type"] in (1, 2)), None)
            if sub is None:
                path = " ".join([cmd["name"]] + [c["name"] for c in chain])
                raise OptionRejected(f"/{name}: no subcommand {word!r} in /{path}")
            chain.append(sub)
            target = sub
        if any(o.get("type") in (1, 2) for o in target.get("options") or []):
            subs = [o["name"] for o in target["options"]]
            raise OptionRejected(f"/{name} needs a subcommand: {subs}")
        return guild, channel, cmd, target, chain

    def click(self, user: FakeMember | FakeUser, message: FakeMessage | int, custom_id: str) -> FakeInteraction:
        """``user`` clicks the button ``custom_id`` on ``message`` (it must be there and enabled)."""
        msg = self.message(message)
        comp = self._usable_component(user, msg, custom_id)
        if comp.get("type") != 2:
            raise OptionRejected(f"{custom_id!r} on message {msg.id} is not a button")
        return self._inject(3, user, self.channels[msg.channel_id], {"custom_id": custom_id, "component_type": 2},
                            msg, None)

    def select(self, user: FakeMember | FakeUser, message: FakeMessage | int, custom_id: str,
               values: Iterable[str]) -> FakeInteraction:
        """``user`` picks ``values`` in the select menu ``custom_id`` (must be offered options)."""
        msg = self.message(message)
        comp = self._usable_component(user, msg, custom_id)
        values = [str(v) for v in values]
        if comp.get("type") == 3:
            offered = [o["value"] for o in comp.get("options") or []]
            bad = [v for v in values if v not in offered]
            if bad:
                raise OptionRejected(f"select {custom_id!r} does not offer {bad} (offers {offered})")
        lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
        if not lo <= len(values) <= hi:
            raise OptionRejected(f"select {custom_id!r} takes {lo}..{hi} values, got {len(values)}")
        return self._inject(3, user, self.channels[msg.channel_id],
                            {"custom_id": custom_id, "component_type": comp.get("type", 3), "values": values},
                            msg, None)

    def react(self, user: FakeMember | FakeUser, message: FakeMessage | int, emoji: str) -> asyncio.Future:
        """``user`` adds ``emoji`` to ``message`` → MESSAGE_REACTION_ADD. Returns a done future (awaitable)."""
        msg = self.message(message)
        if msg.deleted:
            raise OptionRejected(f"message {msg.id} was deleted")
        users = msg.reactions.setdefault(emoji, [])
        if user.id not in users:
            users.append(user.id)
            self._reaction_event("MESSAGE_REACTION_ADD", msg, user.id, emoji)
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def unreact(self, user: FakeMember | FakeUser, message: FakeMessage | int, emoji: str) -> None:
        msg = self.message(message)
        if user.id in msg.reactions.get(emoji, []):
            msg.reactions[emoji].remove(user.id)
            self._reaction_event("MESSAGE_REACTION_REMOVE", msg, user.id, emoji)

    def post(self, user: FakeMember | FakeUser, channel: FakeChannel, content: str) -> FakeMessage:
        """A user writes a plain message (MESSAGE_CREATE; content only with the MESSAGE_CONTENT intent)."""
        author = user.user if isinstance(user, FakeMember) else user
        msg = FakeMessage(self.ids.next(), channel.id, channel.guild.id if channel.guild else None,
                          author.payload(), content=content, created_at=self.clock.time())
        msg.pings = compute_pings(content, None)
        self._store_new(msg)
        return msg

    # internals: interaction injection ------------------------------------------------------------------
    def _build_options(self, cmd_name: str, target: dict, given: dict, strict: bool, resolved: dict,
                       guild: FakeGuild | None) -> list[dict]:
        declared = {o["name"]: o for o in target.get("options") or []}
        unknown = [k for k in given if k not in declared]
        if unknown:
            raise OptionRejected(f"/{cmd_name} has no option(s) {unknown}; it has {list(declared)}")
        out = []
        for oname, opt in declared.items():
            if oname not in given or given[oname] is None:
                if opt.get("required") and strict:
                    raise OptionRejected(f"/{cmd_name}: option {oname!r} is required")
                continue
            value = given[oname]
            otype = opt["type"]
            if strict:
                self._check_option(cmd_name, opt, value)
            if otype in (6, 7, 8, 9, 11):
                value = self._resolve_option(value, resolved, guild)
            out.append({"type": otype, "name": oname, "value": value})
        return out

    @staticmethod
    def _check_option(cmd_name: str, opt: dict, value: Any) -> None:
        name, otype = opt["name"], opt["type"]
        where = f"/{cmd_name} {name}={value!r}"
        if otype == 3:
            if not isinstance(value, str):
                raise OptionRejected(f"{where}: must be text")
            lo, hi = opt.get("min_length", 0), opt.get("max_length", 6000)
            if not lo <= len(value) <= hi:
                raise OptionRejected(f"{where}: length {len(value)} outside {lo}..{hi}")
        elif otype in (4, 10):
            ok = isinstance(value, int) if otype == 4 else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok:
                raise OptionRejected(f"{where}: must be {'a whole number' if otype == 4 else 'a number'}")
            if otype == 4 and abs(value) > 2**53:
                raise OptionRejected(f"{where}: beyond ±2^53")
            if opt.get("min_value") is not None and value < opt["min_value"]:
                raise OptionRejected(f"{where}: below min_value {opt['min_value']}")
            if opt.get("max_value") is not None and value > opt["max_value"]:
                raise OptionRejected(f"{where}: above max_value {opt['max_value']}")
        elif otype == 5 and not isinstance(value, bool):
            raise OptionRejected(f"{where}: must be true/false")
        choices = opt.get("choices")
        if choices and value not in [c["value"] for c in choices]:
            raise OptionRejected(f"{where}: not one of the choices {[c['value'] for c in choices]}")

    def _resolve_option(self, value: Any, resolved: dict, guild: FakeGuild | None) -> str:
        if isinstance(value, FakeMember):
            resolved.setdefault("users", {})[str(value.id)] = value.user.payload()
            resolved.setdefault("members", {})[str(value.id)] = value.payload(with_user=False, permissions_in=None)
        elif isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            if guild and value.id in guild.members:
                resolved.setdefault("members", {})[str(value.id)] = guild.members[value.id].payload(
                    with_user=False, permissions_in=None)
        elif isinstance(value, FakeChannel):
            resolved.setdefault("channels", {})[str(value.id)] = {**value.payload(), "permissions": str(ALL_PERMISSIONS)}
        elif isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
        else:
            raise OptionRejected(f"cannot send {value!r} as a user/channel/role option")
        return str(value.id)

    def _usable_component(self, user, msg: FakeMessage, custom_id: str) -> dict:
        if msg.deleted:
            raise OptionRejected(f"message {msg.id} was deleted")
        if msg.ephemeral and msg.interaction_user_id not in (None, user.id):
            raise OptionRejected(f"message {msg.id} is ephemeral: only its user can see it")
        comp = msg.component(custom_id)
        if comp is None:
            raise OptionRejected(f"message {msg.id} has no component {custom_id!r}; it has {msg.custom_ids()}")
        if comp.get("disabled"):
            raise OptionRejected(f"component {custom_id!r} is disabled")
        return comp

    def _inject(self, itype: int, user, channel: FakeChannel, data: dict, message: FakeMessage | None,
                upload_limit: int | None) -> FakeInteraction:
        if not self._sessions:
            raise RuntimeError("no bot has identified on the fake gateway yet (await fake.wait_until_ready())")
        member = user if isinstance(user, FakeMember) else None
        base_user = member.user if member else user
        guild = member.guild if member else None
        limit = upload_limit or (guild.upload_limit if guild else DEFAULT_UPLOAD_LIMIT)
        it = FakeInteraction(self, itype, base_user, member, channel, data, message, limit)
        self.interactions[it.id] = it
        payload = {
            "id": str(it.id), "application_id": str(self.application_id), "type": itype, "data": data,
            "token": it.token, "version": 1, "locale": "en-US", "entitlements": [], "entitlement_sku_ids": [],
            "attachment_size_limit": limit, "channel_id": str(channel.id),
            "channel": {**channel.payload(), "permissions": str(member.permissions_in(channel) if member else ALL_PERMISSIONS)},
            "app_permissions": str(guild.bot_member.permissions_in(channel) if guild else DEFAULT_BOT_PERMISSIONS),
            "authorizing_integration_owners": {"0": str(guild.id)} if guild else {"1": str(base_user.id)},
            "context": 0 if guild else 1,
        }
        if guild:
            payload["guild_id"] = str(guild.id)
            payload["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = member.payload(permissions_in=channel)
        else:
            payload["user"] = base_user.payload()
        if message is not None:
            payload["message"] = message.to_payload()
        it.sent_at = self.clock.monotonic()
        self._dispatch("INTERACTION_CREATE", payload, guild_id=guild.id if guild else None)
        asyncio.get_running_loop().call_later(INTERACTION_DEADLINE_S + 0.01, self._check_deadlines)
        self._emit({"type": "interaction_create", "interaction_id": it.id, "kind": itype,
                    "user_id": base_user.id, "channel_id": channel.id, "data": data})
        return it

    def _check_deadlines(self) -> None:
        now_m, now_w = self.clock.monotonic(), self.clock.time()
        for it in self.interactions.values():
            if it.state == "pending" and now_m - it.sent_at > INTERACTION_DEADLINE_S:
                self._fail_interaction(it, f"no response within {INTERACTION_DEADLINE_S:.0f} s")
            elif (it.state == "responded" and it.response_type == 5 and now_w > it.expires_at
                  and it.original is not None and it.original.loading and not it.original.deleted
                  and not getattr(it, "_expiry_reported", False)):
                it._expiry_reported = True
                self._violation("deferred response never completed before the 15-minute token expiry",
                                "POST", f"/interactions/{it.id}/…/callback", 0, 0, "")

    def _fail_interaction(self, it: FakeInteraction, reason: str) -> None:
        if it.state == "failed":
            return
        it.state, it.failure = "failed", reason
        if not it._done.done():
            it._done.set_result(None)
        self._violation(f"interaction failed: {reason}", "POST", f"/interactions/{it.id}/…/callback", 0, 10062,
                        "Unknown interaction")
        self._emit({"type": "interaction_failed", "interaction_id": it.id, "reason": reason})

    def _violation(self, rule: str, method: str, path: str, status: int, code: int, message: str) -> None:
        entry = {"rule": rule, "method": method, "path": path, "status": status, "code": code, "message": message}
        self.violations.append(entry)
        log.warning("Discord rule broken: %s (%s %s → %s %s)", rule, method, path, status, code)
        self._emit({"type": "violation", **entry})

    # internals: events ----------------------------------------------------------------------------------
    def _emit(self, event: dict) -> None:
        for q in self._subscribers:
            q.put_nowait(event)

    def _guild_event(self, name: str, guild: FakeGuild, data: dict) -> None:
        if guild.id in self.guilds:
            intent = GUILD_MEMBERS if name.startswith("GUILD_MEMBER") else GUILDS
            self._dispatch(name, data, guild_id=guild.id, intent=intent)

    def _dispatch(self, event: str, data: dict, *, guild_id: int | None, intent: int = 0,
                  needs_content: bool = False) -> None:
        """Send an event of guild ``guild_id`` (None: a DM) to every session of its shard that asked for
        ``intent``; without MESSAGE_CONTENT, others' messages arrive with their content blanked."""
        for s in list(self._sessions.values()):
            if not s.owns(guild_id) or (intent and not s.intents & intent):
                continue
            d = data
            if needs_content and not s.intents & MESSAGE_CONTENT:
                d = {**data, "content": "", "embeds": [], "attachments": [], "components": []}
            self._send_to(s, event, d)

    def _message_event(self, name: str, msg: FakeMessage) -> None:
        if msg.ephemeral:
            return  # bots do not receive ephemeral messages over the gateway
        if name == "MESSAGE_DELETE":
            data = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        else:
            data = msg.to_payload()
        intent = GUILD_MESSAGES if msg.guild_id else DIRECT_MESSAGES
        if msg.guild_id:
            data["guild_id"] = str(msg.guild_id)
            guild = self.guilds.get(msg.guild_id)
            author_id = int(msg.author["id"])
            if name != "MESSAGE_DELETE" and guild and author_id in guild.members and msg.webhook_id is None:
                data["member"] = guild.members[author_id].payload(with_user=False)
        by_other = int(msg.author["id"]) != self.bot_user.id and msg.guild_id is not None \
            and f"<@{self.bot_user.id}>" not in msg.content
        self._dispatch(name, data, guild_id=msg.guild_id, intent=intent,
                       needs_content=by_other and name != "MESSAGE_DELETE")

    def _reaction_event(self, name: str, msg: FakeMessage, user_id: int, emoji: str) -> None:
        data = {"user_id": str(user_id), "channel_id": str(msg.channel_id), "message_id": str(msg.id),
                "emoji": emoji_payload(emoji), "burst": False, "burst_colors": [], "type": 0,
                "message_author_id": msg.author["id"]}
        if msg.guild_id:
            data["guild_id"] = str(msg.guild_id)
            guild = self.guilds[msg.guild_id]
            if name == "MESSAGE_REACTION_ADD" and user_id in guild.members:
                data["member"] = guild.members[user_id].payload()
        self._dispatch(name, data, guild_id=msg.guild_id,
                       intent=GUILD_MESSAGE_REACTIONS if msg.guild_id else DIRECT_MESSAGE_REACTIONS)
        self._emit({"type": "reaction_add" if name.endswith("ADD") else "reaction_remove",
                    "channel_id": msg.channel_id, "message_id": msg.id, "user_id": user_id, "emoji": emoji})

    def _store_new(self, msg: FakeMessage) -> None:
        msg.history.append(msg.snapshot())
        self._messages[msg.id] = msg
        self._by_channel[msg.channel_id].append(msg)
        for a in msg.attachments:
            self._attachments[a.id] = a
        self._message_event("MESSAGE_CREATE", msg)
        self._emit({"type": "message_create", "channel_id": msg.channel_id, "message": self._public(msg)})
        self._wake(msg)

    def _public(self, msg: FakeMessage) -> dict:
        return {**msg.to_payload(), "ephemeral": msg.ephemeral, "for_user_id": msg.interaction_user_id
                if msg.ephemeral else None, "deleted": msg.deleted}

    def _wake(self, msg: FakeMessage) -> None:
        for pred, fut in list(self._waiters):
            if fut.done():
                continue
            try:
                if pred(msg):
                    fut.set_result(msg)
            except Exception as exc:  # a broken predicate should fail the test, not hang it
                fut.set_exception(exc)

    # internals: message create / edit --------------------------------------------------------------------
    def _new_message(self, channel: FakeChannel, body: dict, files: list[UploadedFile], *, upload_limit: int,
                     path: list | None = None, interaction: FakeInteraction | None = None,
                     flags_allowed: int = EPHEMERAL | (1 << 2) | (1 << 12) | IS_COMPONENTS_V2, msg_type: int = 0,
                     author: FakeUser | None = None) -> FakeMessage:
        validate_message_fields(body, path)
        attachments = self._take_files(body, files, upload_limit, [], channel)
        content = body.get("content") or ""
        embeds = body.get("embeds") or []
        components = body.get("components") or []
        flags = int(body.get("flags") or 0) & flags_allowed
        if not flags & LOADING:
            check_not_empty(content, embeds, attachments, components)
        author = author or self.bot_user
        msg = FakeMessage(self.ids.next(), channel.id, channel.guild.id if channel.guild else None, author.payload(),
                          content=str(content), embeds=embeds, components=components, attachments=attachments,
                          flags=flags, type=msg_type, allowed_mentions=body.get("allowed_mentions"),
                          created_at=self.clock.time(), nonce=body.get("nonce"))
        if interaction is not None:
            msg.webhook_id = self.application_id
            msg.application_id = self.application_id
            msg.interaction_id = interaction.id
            msg.interaction_user_id = interaction.user.id
            for a in msg.attachments:
                a.ephemeral = msg.ephemeral
        msg.pings = compute_pings(msg.content, msg.allowed_mentions, ephemeral=msg.ephemeral)
        return msg

    def _take_files(self, body: dict, files: list[UploadedFile], upload_limit: int, existing: list[Attachment],
                    channel: FakeChannel) -> list[Attachment]:
        """Attachments after this request: kept existing ones (by id in ``attachments``) plus new files."""
        if len(files) > MAX_FILES:
            raise ApiError(400, 50035, "Invalid Form Body", {"files": {"_errors": [{
                "code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {MAX_FILES} or fewer in length."}]}},
                rule=f"more than {MAX_FILES} files")
        for f in files:
            if len(f.data) > upload_limit:
                raise ApiError(413, 40005, "Request entity too large",
                               rule=f"upload of {f.filename} ({len(f.data)} bytes) over the {upload_limit}-byte limit")
        declared = body.get("attachments")
        by_field = {f.name: f for f in files}
        out: list[Attachment] = []
        if declared is None:
            out = list(existing)
            new = [(f, None) for f in files]
        else:
            keep = {str(a.get("id")) for a in declared}
            out = [a for a in existing if str(a.id) in keep]
            new = []
            for a in declared:
                f = by_field.get(f"files[{a.get('id')}]")
                if f is not None:
                    new.append((f, a))
        for f, meta in new:
            aid = self.ids.next()
            filename = (meta or {}).get("filename") or f.filename
            out.append(Attachment(aid, filename, f.data, f.content_type,
                                  f"{self.base_url}/attachments/{aid}/{filename}",
                                  description=(meta or {}).get("description")))
        return out

    def _edit_message(self, msg: FakeMessage, body: dict, files: list[UploadedFile], *, upload_limit: int,
                      path: list | None = None, allow_flags: bool = True) -> FakeMessage:
        if msg.deleted:
            raise ApiError(404, 10008, "Unknown Message", rule="edit of a deleted message")
        validate_message_fields(body, path)
        attachments = self._take_files(body, files, upload_limit, msg.attachments, self.channels[msg.channel_id])
        content = msg.content if "content" not in body else (body["content"] or "")
        embeds = msg.embeds if "embeds" not in body else (body["embeds"] or [])
        components = msg.components if "components" not in body else (body["components"] or [])
        check_not_empty(content, embeds, attachments, components)
        was_loading = msg.loading
        msg.content, msg.embeds, msg.components, msg.attachments = str(content), embeds, components, attachments
        msg.flags &= ~LOADING
        if allow_flags and body.get("flags") is not None:
            keep = msg.flags & EPHEMERAL
            msg.flags = (int(body["flags"]) & ~LOADING & ~EPHEMERAL) | keep
        if "allowed_mentions" in body:
            msg.allowed_mentions = body["allowed_mentions"]
        new_pings = compute_pings(msg.content, msg.allowed_mentions, ephemeral=msg.ephemeral)
        for k in ("users", "roles"):
            msg.pings[k] = list(dict.fromkeys(msg.pings[k] + new_pings[k]))
        msg.pings["everyone"] = msg.pings["everyone"] or new_pings["everyone"]
        if not was_loading:
            msg.edited_at = self.clock.time()
        msg.edit_times.append(self.clock.monotonic())
        msg.history.append(msg.snapshot())
        for a in attachments:
            self._attachments[a.id] = a
        self._message_event("MESSAGE_UPDATE", msg)
        self._emit({"type": "message_update", "channel_id": msg.channel_id, "message": self._public(msg)})
        self._wake(msg)
        return msg

    def _delete_message(self, msg: FakeMessage) -> None:
        if msg.deleted:
            raise ApiError(404, 10008, "Unknown Message", rule="delete of a deleted message")
        msg.deleted = True
        self._message_event("MESSAGE_DELETE", msg)
        self._emit({"type": "message_delete", "channel_id": msg.channel_id, "message_id": msg.id})
        self._wake(msg)

    # internals: HTTP -----------------------------------------------------------------------------------
    def _route_table(self):
        r = [
            ("GET", r"/users/@me", self._r_me, True),
            ("GET", r"/users/(?P<uid>\d+)", self._r_user, True),
            ("GET", r"/oauth2/applications/@me", self._r_app, True),
            ("GET", r"/applications/@me", self._r_app, True),
            ("GET", r"/gateway", self._r_gateway, False),
            ("GET", r"/gateway/bot", self._r_gateway, True),
            ("GET PUT POST", r"/applications/(?P<app>\d+)(?:/guilds/(?P<gid>\d+))?/commands", self._r_commands, True),
            ("GET PATCH DELETE", r"/applications/(?P<app>\d+)(?:/guilds/(?P<gid>\d+))?/commands/(?P<cid>\d+)",
             self._r_command, True),
            ("POST", r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", self._r_callback, False),
            ("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)", self._r_followup, False),
            ("GET PATCH DELETE", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)",
             self._r_webhook_message, False),
            ("GET", r"/channels/(?P<cid>\d+)", self._r_channel, True),
            ("GET POST", r"/channels/(?P<cid>\d+)/messages", self._r_channel_messages, True),
            ("POST", r"/channels/(?P<cid>\d+)/messages/bulk-delete", self._r_bulk_delete, True),
            ("GET PATCH DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)", self._r_channel_message, True),
            ("POST", r"/channels/(?P<cid>\d+)/typing", self._r_typing, True),
            ("PUT DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions/(?P<emoji>[^/]+)/(?P<who>@me|\d+)",
             self._r_reaction, True),
            ("GET DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions/(?P<emoji>[^/]+)",
             self._r_reactions_emoji, True),
            ("DELETE", r"/channels/(?P<cid>\d+)/messages/(?P<mid>\d+)/reactions", self._r_reactions_all, True),
            ("GET", r"/guilds/(?P<gid>\d+)", self._r_guild, True),
            ("GET", r"/guilds/(?P<gid>\d+)/channels", self._r_guild_channels, True),
            ("GET", r"/guilds/(?P<gid>\d+)/roles", self._r_guild_roles, True),
            ("GET", r"/guilds/(?P<gid>\d+)/members/(?P<uid>\d+)", self._r_guild_member, True),
            ("POST", r"/users/@me/channels", self._r_dm, True),
        ]
        return [(set(m.split()), re.compile(rx), fn, auth) for m, rx, fn, auth in r]

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown_routes.append((request.method, request.path))
        log.warning("fake-discord: unknown route %s %s", request.method, request.path)
        return _json_response(404, {"message": "404: Not Found", "code": 0})

    async def _read(self, request: web.Request, path: str) -> _Req:
        payload: Any = None
        files: list[UploadedFile] = []
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                data = await part.read(decode=False)
                if part.name == "payload_json":
                    payload = json.loads(data.decode())
                else:
                    files.append(UploadedFile(part.name or "", part.filename or "file", bytes(data),
                                              part.headers.get("Content-Type")))
        elif request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = raw.decode(errors="replace")
        return _Req(request.method, path, request.query, payload, files, request.headers)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        req = await self._read(request, path)
        rec = RecordedRequest(req.method, path, dict(request.query), req.json, req.files, self.clock.time())
        self.requests.append(rec)

        fault = next((f for f in self._faults if f.matches(req.method, path)), None)
        if fault is not None:
            fault.hits += 1
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None and not fault.apply:
                rec.status, rec.injected = fault.status, True
                return self._fault_response(fault)

        limited, rl_headers = self._take_rate_limits(req.method, path)
        if limited is not None:
            rec.status = 429
            return limited

        for methods, rx, handler, needs_auth in self._routes:
            m = rx.fullmatch(path)
            if m and req.method in methods:
                break
        else:
            self.unknown_routes.append((req.method, path))
            log.warning("fake-discord: unknown route %s %s", req.method, path)
            rec.status = 404
            return _json_response(404, {"message": "404: Not Found", "code": 0})

        if needs_auth and request.headers.get("Authorization") != f"Bot {self.bot_token}":
            rec.status = 401
            self._violation("bad or missing bot token", req.method, path, 401, 0, "401: Unauthorized")
            return _json_response(401, {"message": "401: Unauthorized", "code": 0})
        try:
            result = await handler(req, **{k: v for k, v in m.groupdict().items()})
        except ApiError as err:
            rec.status = err.status
            self._violation(err.rule or err.message, req.method, path, err.status, err.code, err.message)
            return _json_response(err.status, err.body())
        if fault is not None and fault.status is not None:  # apply=True: done, but the answer is lost
            rec.status, rec.injected = fault.status, True
            return self._fault_response(fault)
        if isinstance(result, web.StreamResponse):
            rec.status = result.status
            return result
        if result is None:
            rec.status = 204
            return web.Response(status=204, headers=rl_headers)
        rec.status = 200
        return _json_response(200, result, rl_headers)

    def _fault_response(self, fault: FaultRule) -> web.Response:
        if fault.status == 429:
            return self._rate_limited(float(fault.retry_after or 0.5), 5, "fake" + secrets.token_hex(8), fault.body)
        body = fault.body or {"message": f"{fault.status}: injected by fake-discord", "code": 0}
        return _json_response(fault.status, body)

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        att = self._attachments.get(int(request.match_info["aid"]))
        if att is None:
            return web.Response(status=404)
        return web.Response(body=att.data, headers={"Content-Type": att.content_type or "application/octet-stream"})

    # REST handlers ---------------------------------------------------------------------------------------
    def _channel(self, cid) -> FakeChannel:
        ch = self.channels.get(int(cid))
        if ch is None:
            raise ApiError(404, 10003, "Unknown Channel", rule=f"unknown channel {cid}")
        return ch

    def _require(self, ch: FakeChannel, *perm_names: str) -> None:
        if ch.guild is None:
            return
        perms = ch.guild.bot_member.permissions_in(ch)
        if not perms & P["view_channel"]:
            raise ApiError(403, 50001, "Missing Access", rule=f"bot cannot see #{ch.name}")
        missing = [p for p in perm_names if not perms & P[p]]
        if missing:
            raise ApiError(403, 50013, "Missing Permissions", rule=f"bot lacks {missing} in #{ch.name}")

    def _msg_in(self, ch: FakeChannel, mid) -> FakeMessage:
        msg = self._messages.get(int(mid))
        if msg is None or msg.channel_id != ch.id or msg.deleted or msg.ephemeral:
            raise ApiError(404, 10008, "Unknown Message", rule=f"unknown message {mid}")
        return msg

    async def _r_me(self, req):
        return {**self.bot_user.payload(), "verified": True, "mfa_enabled": False, "locale": "en-US",
                "email": None, "premium_type": 0}

    async def _r_user(self, req, uid):
        user = self.users.get(int(uid))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return user.payload()

    async def _r_app(self, req):
        owner = self.app_owner.payload()
        if self.app_team is not None:  # Discord names a team-owned application's owner "team<id>"
            owner = FakeUser(int(self.app_team["id"]), f"team{self.app_team['id']}").payload() | {"flags": 1024}
        return {"id": str(self.application_id), "name": self.bot_user.name, "icon": None,
                "description": "fake-discord application", "rpc_origins": [], "bot_public": True,
                "bot_require_code_grant": False, "bot": self.bot_user.payload(), "owner": owner,
                "team": self.app_team, "verify_key": "0" * 64, "flags": (1 << 19) | (1 << 23),
                "summary": "", "tags": [], "install_params": None, "custom_install_url": None,
                "interactions_endpoint_url": None, "redirect_uris": [], "approximate_guild_count": len(self.guilds),
                "integration_types_config": {"0": {}}}

    async def _r_gateway(self, req):
        return {"url": self.gateway_url, "shards": self.recommended_shards,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}

    def _check_app(self, app) -> None:
        if int(app) != self.application_id:
            raise ApiError(403, 50001, "Missing Access", rule="commands of another application")

    async def _r_commands(self, req, app, gid=None):
        self._check_app(app)
        scope = int(gid) if gid else None
        if scope is not None and scope not in self.guilds:
            raise ApiError(403, 50001, "Missing Access", rule=f"commands for unknown guild {gid}")
        if req.method == "GET":
            return self.commands.get(scope, [])
        if req.method == "PUT":
            items = req.json or []
            validate_commands(items)
            old = {(c["name"], c.get("type", 1)): c for c in self.commands.get(scope, [])}
            out = []
            for item in items:
                prev = old.get((item["name"], item.get("type", 1)))
                out.append(self._store_command(item, scope, prev["id"] if prev else None))
            self.commands[scope] = out
            self._emit({"type": "commands_synced", "guild_id": scope, "names": [c["name"] for c in out]})
            return out
        validate_commands([req.json])
        cmds = self.commands.setdefault(scope, [])
        prev = next((c for c in cmds if c["name"] == req.json["name"]), None)
        cmd = self._store_command(req.json, scope, prev["id"] if prev else None)
        self.commands[scope] = [c for c in cmds if c is not prev] + [cmd]
        return cmd

    def _store_command(self, item: dict, scope: int | None, cid: str | None) -> dict:
        dmp = item.get("default_member_permissions")
        return {**item, "id": cid or str(self.ids.next()), "application_id": str(self.application_id),
                "version": str(self.ids.next()), "type": item.get("type", 1),
                "default_member_permissions": None if dmp is None else str(dmp),
                "guild_id": str(scope) if scope else None, "nsfw": item.get("nsfw", False),
                "description": item.get("description", ""), "options": item.get("options") or []}

    async def _r_command(self, req, app, cid, gid=None):
        self._check_app(app)
        scope = int(gid) if gid else None
        cmds = self.commands.get(scope, [])
        cmd = next((c for c in cmds if c["id"] == cid), None)
        if cmd is None:
            raise ApiError(404, 10063, "Unknown application command")
        if req.method == "GET":
            return cmd
        if req.method == "DELETE":
            cmds.remove(cmd)
            return None
        new = self._store_command({**cmd, **(req.json or {})}, scope, cid)
        cmds[cmds.index(cmd)] = new
        return new

    # interactions -------------------------------------------------------------------------------------
    async def _r_callback(self, req, iid, token):
        it = self.interactions.get(int(iid))
        if it is None or it.token != token:
            raise ApiError(404, 10062, "Unknown interaction", rule="callback for an unknown interaction")
        elapsed = self.clock.monotonic() - it.sent_at
        if it.state == "failed" or (it.state == "pending" and elapsed > INTERACTION_DEADLINE_S):
            self._fail_interaction(it, f"no response within {INTERACTION_DEADLINE_S:.0f} s")
            raise ApiError(404, 10062, "Unknown interaction",
                           rule=f"interaction answered after {elapsed:.2f} s (deadline {INTERACTION_DEADLINE_S:.0f} s)")
        if it.response_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.",
                           rule="interaction acknowledged twice")
        body = req.json if isinstance(req.json, dict) else {}
        rtype, data = body.get("type"), body.get("data") or {}
        allowed = {2: (4, 5, 9), 3: (4, 5, 6, 7, 9), 4: (8,), 5: (4, 5, 6, 7)}.get(it.type, ())
        if rtype not in allowed:
            raise ApiError(400, 50035, "Invalid Form Body", {"type": {"_errors": [{
                "code": "INTERACTION_RESPONSE_TYPE_INVALID", "message": f"Invalid interaction response type {rtype}"}]}},
                rule=f"callback type {rtype} not valid for interaction type {it.type}")
        msg: FakeMessage | None = None
        if rtype in (4, 5):
            flags = int(data.get("flags") or 0)
            if rtype == 5:
                body_for_msg = {"flags": (flags & EPHEMERAL) | LOADING}
                msg = self._new_message(it.channel, body_for_msg, [], upload_limit=it.upload_limit, path=["data"],
                                        interaction=it, flags_allowed=EPHEMERAL | LOADING, msg_type=20)
            else:
                msg = self._new_message(it.channel, data, req.files, upload_limit=it.upload_limit, path=["data"],
                                        interaction=it, msg_type=20 if it.type == 2 else 0)
            self._accept(it, rtype, data)
            it.original = msg
            self._store_new(msg)
        elif rtype in (6, 7):
            target = it.message
            if rtype == 7:
                if target is None:
                    raise ApiError(400, 50035, "Invalid Form Body", rule="update-message response without a message")
                self._edit_message(target, data, req.files, upload_limit=it.upload_limit, path=["data"])
            self._accept(it, rtype, data)
            it.original = target
            msg = target
        else:  # 8 autocomplete, 9 modal
            if rtype == 8 and len((data or {}).get("choices") or []) > 25:
                raise ApiError(400, 50035, "Invalid Form Body", rule="more than 25 autocomplete choices")
            self._accept(it, rtype, data)
        if req.query.get("with_response") in ("1", "true", "True"):
            out = {"interaction": {"id": str(it.id), "type": it.type,
                                   "response_message_id": str(msg.id) if msg else None,
                                   "response_message_loading": rtype == 5,
                                   "response_message_ephemeral": bool(msg and msg.ephemeral)},
                   "resource": {"type": rtype}}
            if msg is not None and rtype in (4, 5, 7):
                out["resource"]["message"] = msg.to_payload()
            return out
        return None

    def _accept(self, it: FakeInteraction, rtype: int, data: dict) -> None:
        it.response_type, it.response = rtype, data
        it.latency = self.clock.monotonic() - it.sent_at
        it.state = "responded"
        if not it._done.done():
            it._done.set_result(None)
        self._emit({"type": "interaction_response", "interaction_id": it.id, "response_type": rtype,
                    "latency": it.latency, "data": data, "user_id": it.user.id, "channel_id": it.channel.id})

    def _interaction_for(self, app, token, *, need_ack: bool = True) -> FakeInteraction:
        it = next((i for i in self.interactions.values() if i.token == token), None)
        if it is None or int(app) != self.application_id:
            raise ApiError(404, 10015, "Unknown Webhook", rule="webhook call with an unknown interaction token")
        if self.clock.time() > it.expires_at:
            raise ApiError(401, 50027, "Invalid Webhook Token",
                           rule="interaction token used after its 15-minute lifetime")
        if need_ack and it.response_type is None:
            raise ApiError(404, 10015, "Unknown Webhook",
                           rule="followup/edit before the interaction was acknowledged")
        return it

    async def _r_followup(self, req, app, token):
        it = self._interaction_for(app, token)
        body = req.json if isinstance(req.json, dict) else {}
        orig = it.original
        if it.response_type == 5 and orig is not None and orig.loading and not orig.deleted:
            # Discord: the first followup after a deferred response replaces the "thinking…" message.
            msg = self._edit_message(orig, body, req.files, upload_limit=it.upload_limit, allow_flags=False)
        else:
            msg = self._new_message(it.channel, body, req.files, upload_limit=it.upload_limit, interaction=it,
                                    msg_type=0)
            self._store_new(msg)
        it.followups.append(msg)
        self._wake(msg)
        if req.query.get("wait") in ("true", "1", "True"):
            return msg.to_payload()
        return None

    async def _r_webhook_message(self, req, app, token, mid):
        it = self._interaction_for(app, token)
        if mid == "@original":
            msg = it.original
        else:
            msg = next((m for m in [it.original, *it.followups] if m is not None and m.id == int(mid)), None)
        if msg is None or msg.deleted:
            raise ApiError(404, 10008, "Unknown Message", rule=f"webhook message {mid} does not exist")
        if req.method == "GET":
            return msg.to_payload()
        if req.method == "DELETE":
            self._delete_message(msg)
            return None
        body = req.json if isinstance(req.json, dict) else {}
        self._edit_message(msg, body, req.files, upload_limit=it.upload_limit, allow_flags=False)
        return msg.to_payload()

    # channels ------------------------------------------------------------------------------------------
    async def _r_channel(self, req, cid):
        return self._channel(cid).payload()

    async def _r_channel_messages(self, req, cid):
        ch = self._channel(cid)
        if req.method == "GET":
            self._require(ch, "read_message_history")
            limit = int(req.query.get("limit", 50))
            if not 1 <= limit <= 100:
                raise ApiError(400, 50035, "Invalid Form Body", rule="history limit outside 1..100")
            msgs = [m for m in self._by_channel[ch.id] if not m.deleted and not m.ephemeral]
            if "before" in req.query:
                msgs = [m for m in msgs if m.id < int(req.query["before"])]
            if "after" in req.query:
                msgs = [m for m in msgs if m.id > int(req.query["after"])]
                return [m.to_payload() for m in reversed(msgs[:limit])]
            return [m.to_payload() for m in reversed(msgs[-limit:])]
        body = req.json if isinstance(req.json, dict) else {}
        need = ["send_messages"] + (["attach_files"] if req.files else [])
        self._require(ch, *need)
        if body.get("enforce_nonce") and body.get("nonce") is not None:
            for m in reversed(self._by_channel[ch.id]):
                if m.nonce == body["nonce"] and self.clock.time() - m.created_at < 300 and not m.deleted:
                    return m.to_payload()  # Discord returns the earlier message instead of a duplicate
        ref = body.get("message_reference")
        msg_type = 0
        if ref:
            target = self._messages.get(int(ref.get("message_id", 0)))
            if target is None or target.deleted:
                if ref.get("fail_if_not_exists", True):
                    raise ApiError(400, 50035, "Invalid Form Body", rule="reply to an unknown message")
                ref = None
            else:
                msg_type = 19
        msg = self._new_message(ch, body, req.files, upload_limit=ch.guild.upload_limit if ch.guild else DEFAULT_UPLOAD_LIMIT,
                                flags_allowed=(1 << 2) | (1 << 12) | IS_COMPONENTS_V2, msg_type=msg_type)
        if ref:
            msg.message_reference = {"message_id": str(ref["message_id"]), "channel_id": str(ch.id),
                                     **({"guild_id": str(ch.guild.id)} if ch.guild else {})}
        self._store_new(msg)
        return msg.to_payload()

    async def _r_channel_message(self, req, cid, mid):
        ch = self._channel(cid)
        msg = self._msg_in(ch, mid)
        if req.method == "GET":
            self._require(ch, "read_message_history")
            return msg.to_payload()
        # The bot's own messages, including its non-ephemeral interaction responses and followups
        # (Discord lets a bot that is in the guild edit those with its token after the 15 minutes).
        mine = int(msg.author["id"]) == self.bot_user.id
        if req.method == "DELETE":
            if not mine:
                self._require(ch, "manage_messages")
            self._delete_message(msg)
            return None
        if not mine:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user",
                           rule="edit of someone else's message")
        body = req.json if isinstance(req.json, dict) else {}
        self._edit_message(msg, body, req.files, upload_limit=ch.guild.upload_limit if ch.guild else DEFAULT_UPLOAD_LIMIT)
        return msg.to_payload()

    async def _r_bulk_delete(self, req, cid):
        ch = self._channel(cid)
        self._require(ch, "manage_messages")
        ids = (req.json or {}).get("messages") or []
        if not 2 <= len(ids) <= 100:
            raise ApiError(400, 50035, "Invalid Form Body", rule="bulk delete needs 2..100 ids")
        for mid in ids:
            self._delete_message(self._msg_in(ch, mid))
        return None

    async def _r_typing(self, req, cid):
        self._require(self._channel(cid), "send_messages")
        return None

    async def _r_reaction(self, req, cid, mid, emoji, who):
        ch = self._channel(cid)
        msg = self._msg_in(ch, mid)
        if req.method == "PUT":
            if who != "@me":
                raise ApiError(405, 0, "405: Method Not Allowed", rule="bots can only add their own reactions")
            if re.fullmatch(r"[A-Za-z0-9_ ]+", emoji):
                raise ApiError(400, 10014, "Unknown Emoji", rule=f"not an emoji: {emoji!r}")
            self._require(ch, "read_message_history")
            if emoji not in msg.reactions or not msg.reactions[emoji]:
                self._require(ch, "add_reactions")
                if sum(1 for u in msg.reactions.values() if u) >= 20:
                    raise ApiError(400, 30010, "Maximum number of reactions reached (20)", rule="more than 20 reactions")
            users = msg.reactions.setdefault(emoji, [])
            if self.bot_user.id not in users:
                users.append(self.bot_user.id)
                self._reaction_event("MESSAGE_REACTION_ADD", msg, self.bot_user.id, emoji)
            return None
        uid = self.bot_user.id if who == "@me" else int(who)
        if uid != self.bot_user.id:
            self._require(ch, "manage_messages")
        if uid in msg.reactions.get(emoji, []):
            msg.reactions[emoji].remove(uid)
            self._reaction_event("MESSAGE_REACTION_REMOVE", msg, uid, emoji)
        return None

    async def _r_reactions_emoji(self, req, cid, mid, emoji):
        ch = self._channel(cid)
        msg = self._msg_in(ch, mid)
        if req.method == "GET":
            return [self.users[u].payload() for u in msg.reactions.get(emoji, []) if u in self.users]
        self._require(ch, "manage_messages")
        msg.reactions.pop(emoji, None)
        return None

    async def _r_reactions_all(self, req, cid, mid):
        ch = self._channel(cid)
        msg = self._msg_in(ch, mid)
        self._require(ch, "manage_messages")
        msg.reactions.clear()
        return None

    async def _r_guild(self, req, gid):
        g = self.guilds.get(int(gid))
        if g is None:
            raise ApiError(404, 10004, "Unknown Guild")
        out = g.payload()
        for k in ("members", "channels", "threads", "presences", "voice_states", "joined_at", "large",
                  "member_count", "unavailable"):
            out.pop(k, None)
        out["approximate_member_count"] = len(g.members)
        return out

    async def _r_guild_channels(self, req, gid):
        g = self.guilds.get(int(gid))
        if g is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return [c.payload() for c in g.channels.values()]

    async def _r_guild_roles(self, req, gid):
        g = self.guilds.get(int(gid))
        if g is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return [r.payload() for r in g.roles.values()]

    async def _r_guild_member(self, req, gid, uid):
        g = self.guilds.get(int(gid))
        if g is None or int(uid) not in g.members:
            raise ApiError(404, 10007, "Unknown Member")
        return g.members[int(uid)].payload()

    async def _r_dm(self, req):
        user = self.users.get(int((req.json or {}).get("recipient_id", 0)))
        if user is None:
            raise ApiError(400, 50035, "Invalid Form Body", rule="DM to an unknown user")
        return self.dm_channel(user).payload()

    # gateway -------------------------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        conn = _Conn(ws)
        self._conns.add(conn)
        self.gateway_stats["connects"] += 1
        conn.writer = asyncio.create_task(self._writer(conn))
        await conn.queue.put(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None}))
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        frame = json.loads(msg.data)
                    except ValueError:
                        await ws.close(code=4002, message=b"Decode error")
                        break
                    await self._on_op(conn, frame)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Decode error")
                    break
        finally:
            self._conns.discard(conn)
            conn.writer.cancel()
            session = conn.session
            self._detach(conn)
            if session is not None and not conn.dropped and ws.close_code in (1000, 1001):
                self._sessions.pop(session.id, None)  # a clean close ends the session (not resumable)
            self._emit({"type": "gateway", "state": "disconnected", "code": ws.close_code})
        return ws

    def _detach(self, conn: _Conn) -> None:
        if conn.session is not None and conn.session.conn is conn:
            conn.session.conn = None

    async def _writer(self, conn: _Conn) -> None:
        try:
            while True:
                text = await conn.queue.get()
                await conn.ws.send_str(text)
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            pass

    async def _on_op(self, conn: _Conn, frame: dict) -> None:
        op, d = frame.get("op"), frame.get("d")
        if op == 1:
            conn.queue.put_nowait(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
        elif op == 2:
            await self._identify(conn, d or {})
        elif op == 6:
            session = self._sessions.get((d or {}).get("session_id"))
            seq = (d or {}).get("seq") or 0
            if session is None or d.get("token") != self.bot_token or \
                    (session.log and seq < session.log[0][0] - 1):
                conn.queue.put_nowait(json.dumps({"op": 9, "d": False, "s": None, "t": None}))
                return
            if session.conn is not None and session.conn is not conn:
                old = session.conn
                old.dropped = True
                self._detach(old)
                await old.ws.close(code=4000)
            self.gateway_stats["resumes"] += 1
            session.conn = conn
            conn.session = session
            for s, text in list(session.log):
                if s > seq:
                    conn.queue.put_nowait(text)
            self._send_to(session, "RESUMED", {"_trace": ["fake-discord"]})
            self._emit({"type": "gateway", "state": "resumed", "session_id": session.id, "replayed_after": seq})
        elif op == 8:
            if conn.session is None:
                return
            gid = int((d or {}).get("guild_id") or 0)
            g = self.guilds.get(gid)
            if g is not None and conn.session.owns(gid):
                chunk = {"guild_id": str(g.id), "members": [m.payload() for m in g.members.values()],
                         "chunk_index": 0, "chunk_count": 1, "not_found": []}
                if d.get("nonce"):
                    chunk["nonce"] = d["nonce"]
                self._send_to(conn.session, "GUILD_MEMBERS_CHUNK", chunk)
        elif op in (3, 4):
            pass  # presence / voice state: accepted and ignored
        else:
            await conn.ws.close(code=4001, message=b"Unknown opcode")

    async def _identify(self, conn: _Conn, d: dict) -> None:
        """op 2: a new session gets READY (its shard's guilds, unavailable) and then their GUILD_CREATEs."""
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated")
            return
        if d.get("token") != self.bot_token:
            self._violation("IDENTIFY with a wrong token", "WS", "/gateway", 4004, 4004, "Authentication failed")
            await conn.ws.close(code=4004, message=b"Authentication failed")
            return
        try:
            shard = identify_shard(d.get("shard"))
        except (TypeError, ValueError) as err:
            self._violation(f"IDENTIFY with an invalid shard: {err}", "WS", "/gateway", 4010, 4010, "Invalid shard")
            await conn.ws.close(code=4010, message=b"Invalid shard")
            return
        self.gateway_stats["identifies"] += 1
        session = GatewaySession(secrets.token_hex(16), int(d.get("intents") or 0), shard)
        self._sessions[session.id] = session
        session.conn = conn
        conn.session = session
        guilds = [g for g in self.guilds.values() if session.owns(g.id)]
        ready = {"v": 10, "user": {**self.bot_user.payload(), "verified": True, "mfa_enabled": False},
                 "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                 "session_id": session.id, "session_type": "normal", "resume_gateway_url": self.gateway_url,
                 "application": {"id": str(self.application_id), "flags": (1 << 19) | (1 << 23)},
                 "private_channels": [], "relationships": [], "presences": [], "guild_join_requests": [],
                 "geo_ordered_rtc_regions": [], "user_settings": {}, "_trace": ["fake-discord"]}
        if shard is not None:
            ready["shard"] = list(shard)
        self._send_to(session, "READY", ready)
        if session.intents & GUILDS:
            for g in guilds:
                self._send_to(session, "GUILD_CREATE", g.payload())
        self._emit({"type": "gateway", "state": "identified", "session_id": session.id,
                    "shard": list(shard) if shard else None})

    def _send_to(self, session: GatewaySession, event: str, data: dict) -> None:
        session.seq += 1
        text = json.dumps({"op": 0, "t": event, "s": session.seq, "d": data})
        session.log.append((session.seq, text))
        if session.conn is not None:
            session.conn.queue.put_nowait(text)

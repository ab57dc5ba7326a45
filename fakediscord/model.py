"""Plain data of the fake Discord: ids, clock, permissions, shards, API errors, attachments, messages.

Nothing here does I/O; :mod:`fakediscord.fake` serves it over HTTP and the gateway, and
:mod:`fakediscord.rules` holds the limits Discord checks. Payload shapes follow the Discord API v10
reference (the subset discord.py 2.7 reads).
"""
from __future__ import annotations

import io
import itertools
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import discord

DISCORD_EPOCH_MS = 1420070400000
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # bytes per file: guild boost tiers 0 and 1
TIER_UPLOAD_LIMITS = {0: DEFAULT_UPLOAD_LIMIT, 1: DEFAULT_UPLOAD_LIMIT, 2: 50 * 1024 * 1024, 3: 100 * 1024 * 1024}
INTERACTION_DEADLINE_S = 3.0  # first response to an interaction
INTERACTION_TOKEN_TTL_S = 15 * 60  # followups / @original edits

ALL_PERMISSIONS = discord.Permissions.all().value
ADMINISTRATOR = discord.Permissions(administrator=True).value

# gateway intents that gate events (https://discord.com/developers/docs/events/gateway#gateway-intents)
GUILDS, GUILD_MEMBERS = 1 << 0, 1 << 1
GUILD_MESSAGES, GUILD_MESSAGE_REACTIONS = 1 << 9, 1 << 10
DIRECT_MESSAGES, DIRECT_MESSAGE_REACTIONS, MESSAGE_CONTENT = 1 << 12, 1 << 13, 1 << 15

# message flags
EPHEMERAL = 1 << 6
LOADING = 1 << 7
IS_COMPONENTS_V2 = 1 << 15

#: What the fake's bot member may do unless a test changes it (what the invite URL asks for).
DEFAULT_BOT_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, send_messages_in_threads=True, embed_links=True,
    attach_files=True, add_reactions=True, read_message_history=True, use_external_emojis=True,
    manage_messages=False,
).value


def permissions_value(perms: int | str | Iterable[str] | discord.Permissions | None) -> int:
    """``8``, ``"manage_guild"``, ``["manage_guild", "kick_members"]`` or a discord.Permissions → int."""
    if perms is None:
        return 0
    if isinstance(perms, discord.Permissions):
        return perms.value
    if isinstance(perms, int):
        return perms
    if isinstance(perms, str):
        perms = [perms]
    return discord.Permissions(**{name: True for name in perms}).value


def iso(ts: float | None) -> str | None:
    """Discord's ISO 8601 timestamp for a unix time."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


class Clock:
    """Wall and monotonic time that tests can move forward with :meth:`advance`.

    Interaction deadlines and token expiry use this clock, so a test can jump 15 minutes ahead.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self._listeners: list = []

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward; expired interactions are failed at once."""
        self.offset += float(seconds)
        for listener in list(self._listeners):
            listener()


class Snowflakes:
    """Discord-style ids: milliseconds since 2015 in the top bits, so ids sort by creation time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._counter = itertools.count()
        self._last = 0

    def next(self) -> int:
        ms = int(self.clock.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (1 << 17) | (next(self._counter) & 0xFFF)
        self._last = value = max(value, self._last + 1)
        return value

    def next_on_shard(self, shard_id: int, shard_count: int) -> int:
        """The next id of a guild that lives on shard ``shard_id`` of ``shard_count`` (see :func:`shard_of`).

        The shard comes from the timestamp bits, so the timestamp moves ahead by at most ``shard_count - 1``
        ms: later ids still sort after it."""
        check_shard(shard_id, shard_count)
        value = self.next()
        value += ((shard_id - (value >> 22)) % shard_count) << 22
        self._last = value
        return value


# ---------------------------------------------------------------------------------------------------------
# Sharding (https://discord.com/developers/docs/events/gateway#sharding)
# ---------------------------------------------------------------------------------------------------------
def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard whose sessions get a guild's events: ``(guild_id >> 22) % shard_count``; DMs (no guild)
    are on shard 0. Written here from Discord's documentation, independently of the bot's own helper, so
    the fake stays a check on it."""
    return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count


def check_shard(shard_id: Any, shard_count: Any) -> None:
    """Raise ValueError unless ``0 <= shard_id < shard_count`` (whole numbers)."""
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (shard_id, shard_count))
    if not ok or not 0 <= shard_id < shard_count:
        raise ValueError(f"invalid shard {shard_id!r} of {shard_count!r}: needs 0 <= shard id < shard count")


def identify_shard(value: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` field as ``(shard_id, shard_count)``; ValueError when it is not a valid
    ``[id, count]`` pair (Discord closes such a connection with 4010 Invalid shard)."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"shard must be [shard_id, shard_count], got {value!r}")
    check_shard(*value)
    return value[0], value[1]


class OptionRejected(ValueError):
    """Discord's client would refuse to send this command (missing/unknown option, out of range, …)."""


class ApiError(Exception):
    """An error answer as Discord gives it: HTTP status plus ``{"message", "code"[, "errors"]}``."""

    def __init__(self, status: int, code: int, message: str, errors: dict | None = None,
                 rule: str | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors
        self.rule = rule  # which Discord rule the client broke, for fake.violations

    def body(self) -> dict:
        out: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            out["errors"] = self.errors
        return out


@dataclass
class Attachment:
    """A file as uploaded by the bot: the bytes are kept for assertions."""

    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    description: str | None = None
    ephemeral: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def media_type(self) -> str | None:
        """What Discord reports as ``content_type``: it goes by the file name (``video/mp4``, ``image/gif``),
        not by the upload's part header, which discord.py always sends as ``application/octet-stream``."""
        import mimetypes

        guessed = mimetypes.guess_type(self.filename)[0]
        return guessed if guessed and self.content_type in (None, "application/octet-stream") else self.content_type

    def to_payload(self) -> dict:
        out = {"id": str(self.id), "filename": self.filename, "size": self.size, "url": self.url,
               "proxy_url": self.url, "content_type": self.media_type, "ephemeral": self.ephemeral}
        if self.description:
            out["description"] = self.description
        dims = image_size(self.data)
        if dims:
            out["width"], out["height"] = dims
        return out


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of an image (GIF, PNG, JPEG) or an MP4 video, as Discord reports them; else None."""
    if data[4:8] == b"ftyp":
        return _video_size(data)
    if data[:4] not in (b"GIF8", b"\x89PNG") and not data[:3] == b"\xff\xd8\xff":
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 — PIL raises many kinds on bad bytes: Discord would leave the size out
        return None


def _video_size(data: bytes) -> tuple[int, int] | None:
    try:
        import av

        with av.open(io.BytesIO(data)) as container:
            ctx = container.streams.video[0].codec_context
            return ctx.width, ctx.height
    except Exception:  # noqa: BLE001 — no PyAV, or not a video it can read: Discord would leave the size out too
        return None


@dataclass
class FakeMessage:
    """A message in the fake: what the bot (or a fake user) posted, with every edit kept.

    ``components`` is the raw component JSON; :meth:`buttons`, :meth:`selects` and :meth:`custom_ids` help
    tests find things to click. ``pings`` is who Discord would actually notify, given ``allowed_mentions``.
    """

    id: int
    channel_id: int
    guild_id: int | None
    author: dict
    content: str = ""
    embeds: list = field(default_factory=list)
    components: list = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    allowed_mentions: dict | None = None
    pings: dict = field(default_factory=lambda: {"users": [], "roles": [], "everyone": False})
    created_at: float = 0.0
    edited_at: float | None = None
    deleted: bool = False
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    interaction_user_id: int | None = None
    message_reference: dict | None = None
    nonce: str | int | None = None
    reactions: dict[str, list[int]] = field(default_factory=dict)  # emoji → user ids, in order
    history: list[dict] = field(default_factory=list)  # one snapshot per create/edit
    edit_times: list[float] = field(default_factory=list)  # monotonic clock of every edit

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    @property
    def pings_anyone(self) -> bool:
        return bool(self.pings["users"] or self.pings["roles"] or self.pings["everyone"])

    def iter_components(self) -> Iterable[dict]:
        def walk(items):
            for c in items or []:
                yield c
                yield from walk(c.get("components"))
                if c.get("accessory"):
                    yield from walk([c["accessory"]])
        yield from walk(self.components)

    def buttons(self) -> list[dict]:
        return [c for c in self.iter_components() if c.get("type") == 2]

    def selects(self) -> list[dict]:
        return [c for c in self.iter_components() if c.get("type") in (3, 5, 6, 7, 8)]

    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in self.iter_components() if "custom_id" in c]

    def component(self, custom_id: str) -> dict | None:
        return next((c for c in self.iter_components() if c.get("custom_id") == custom_id), None)

    def attachment(self, name_or_suffix: str) -> Attachment:
        for a in self.attachments:
            if a.filename == name_or_suffix or a.filename.endswith(name_or_suffix):
                return a
        raise KeyError(f"message {self.id} has no attachment {name_or_suffix!r}: "
                       f"{[a.filename for a in self.attachments]}")

    def to_payload(self) -> dict:
        out: dict[str, Any] = {
            "id": str(self.id), "channel_id": str(self.channel_id), "type": self.type,
            "author": self.author, "content": self.content, "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at), "tts": False,
            "mention_everyone": self.pings["everyone"],
            "mentions": [{"id": str(u), "username": f"user{u}", "discriminator": "0", "avatar": None}
                         for u in self.pings["users"]],
            "mention_roles": [str(r) for r in self.pings["roles"]],
            "attachments": [a.to_payload() for a in self.attachments], "embeds": self.embeds,
            "pinned": False, "flags": self.flags, "components": self.components,
        }
        if self.guild_id is not None:
            out["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            out["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            out["application_id"] = str(self.application_id)
        if self.interaction_id is not None:
            out["interaction_metadata"] = {"id": str(self.interaction_id), "type": 2,
                                           "user": {"id": str(self.interaction_user_id), "username": "user",
                                                    "discriminator": "0", "avatar": None},
                                           "authorizing_integration_owners": {}}
        if self.message_reference:
            out["message_reference"] = self.message_reference
        if self.nonce is not None:
            out["nonce"] = self.nonce
        if self.reactions:
            me = self.author.get("id")
            out["reactions"] = [
                {"emoji": emoji_payload(e), "count": len(users), "me": me is not None and int(me) in users,
                 "me_burst": False, "burst_colors": [], "count_details": {"burst": 0, "normal": len(users)}}
                for e, users in self.reactions.items() if users
            ]
        return out

    def snapshot(self) -> dict:
        return {"content": self.content, "components": self.components, "embeds": self.embeds,
                "flags": self.flags, "attachments": [a.filename for a in self.attachments]}


def emoji_payload(emoji: str) -> dict:
    """``"3️⃣"`` → unicode emoji; ``"name:123"`` → custom emoji."""
    m = re.fullmatch(r"<?a?:?(\w+):(\d+)>?", emoji)
    if m:
        return {"id": m.group(2), "name": m.group(1), "animated": False}
    return {"id": None, "name": emoji}


# ---------------------------------------------------------------------------------------------------------
# Mentions: who gets notified
# ---------------------------------------------------------------------------------------------------------
USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")


def compute_pings(content: str, allowed_mentions: dict | None, *, ephemeral: bool = False,
                  replied_user: int | None = None) -> dict:
    """Who Discord notifies for ``content``: absent ``allowed_mentions`` means everything mentioned pings."""
    if ephemeral:
        return {"users": [], "roles": [], "everyone": False}
    am = allowed_mentions if allowed_mentions is not None else {"parse": ["users", "roles", "everyone"]}
    parse = set(am.get("parse") or [])
    users = [int(u) for u in dict.fromkeys(USER_MENTION.findall(content or ""))]
    roles = [int(r) for r in dict.fromkeys(ROLE_MENTION.findall(content or ""))]
    allowed_users = {int(u) for u in am.get("users") or []}
    allowed_roles = {int(r) for r in am.get("roles") or []}
    pinged_users = [u for u in users if "users" in parse or u in allowed_users]
    if (replied_user is not None and am.get("replied_user", allowed_mentions is None)
            and replied_user not in pinged_users):
        pinged_users.append(replied_user)
    return {
        "users": pinged_users,
        "roles": [r for r in roles if "roles" in parse or r in allowed_roles],
        "everyone": "everyone" in parse and ("@everyone" in (content or "") or "@here" in (content or "")),
    }

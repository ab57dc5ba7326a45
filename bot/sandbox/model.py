"""Plain data and Discord's rules for the fake Discord: ids, clock, permissions, messages, validation.

Nothing here does I/O; :mod:`bot.sandbox.fake` serves it over HTTP and the gateway. Payload shapes follow
the Discord API v10 reference (the subset discord.py 2.7 reads).
"""
from __future__ import annotations

import io
import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import discord

DISCORD_EPOCH_MS = 1420070400000
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # bytes per file: guild boost tiers 0 and 1
TIER_UPLOAD_LIMITS = {0: DEFAULT_UPLOAD_LIMIT, 1: DEFAULT_UPLOAD_LIMIT, 2: 50 * 1024 * 1024, 3: 100 * 1024 * 1024}
INTERACTION_DEADLINE_S = 3.0  # first response to an interaction
INTERACTION_TOKEN_TTL_S = 15 * 60  # followups / @original edits

ALL_PERMISSIONS = discord.Permissions.all().value
ADMINISTRATOR = discord.Permissions(administrator=True).value

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


def form_error(errors: dict, rule: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", errors, rule=rule)


def _err(code: str, message: str) -> dict:
    return {"_errors": [{"code": code, "message": message}]}


def _nest(path: list, leaf: dict) -> dict:
    out = leaf
    for key in reversed(path):
        out = {str(key): out}
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
    if not data[:4] in (b"GIF8", b"\x89PNG") and not data[:3] == b"\xff\xd8\xff":
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None


def _video_size(data: bytes) -> tuple[int, int] | None:
    try:
        import av

        with av.open(io.BytesIO(data)) as container:
            ctx = container.streams.video[0].codec_context
            return ctx.width, ctx.height
    except Exception:  # no PyAV, or not a video it can read: Discord would leave the size out too
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
    if replied_user is not None and am.get("replied_user", allowed_mentions is None) and replied_user not in pinged_users:
        pinged_users.append(replied_user)
    return {
        "users": pinged_users,
        "roles": [r for r in roles if "roles" in parse or r in allowed_roles],
        "everyone": "everyone" in parse and ("@everyone" in (content or "") or "@here" in (content or "")),
    }


# ---------------------------------------------------------------------------------------------------------
# Message validation (Discord's documented limits)
# ---------------------------------------------------------------------------------------------------------
MAX_CONTENT = 2000
MAX_FILES = 10
MAX_ROWS = 5
MAX_ROW_BUTTONS = 5
MAX_SELECT_OPTIONS = 25
MAX_CUSTOM_ID = 100


def validate_message_fields(body: dict, path: list | None = None) -> None:
    """Raise ApiError (400, 50035) for content, embeds, components or allowed_mentions Discord refuses."""
    path = list(path or [])
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        content = str(content)
    if content is not None and len(content) > MAX_CONTENT:
        raise form_error(_nest(path + ["content"], _err("BASE_TYPE_MAX_LENGTH",
                                                        f"Must be {MAX_CONTENT} or fewer in length.")),
                         rule=f"content longer than {MAX_CONTENT} characters ({len(content)})")
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        raise form_error(_nest(path + ["embeds"], _err("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")),
                         rule="more than 10 embeds")
    total = 0
    for i, e in enumerate(embeds):
        for key, limit in (("title", 256), ("description", 4096)):
            if len(e.get(key) or "") > limit:
                raise form_error(_nest(path + ["embeds", i, key], _err(
                    "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")), rule=f"embed {key} too long")
            total += len(e.get(key) or "")
        fields = e.get("fields") or []
        if len(fields) > 25:
            raise form_error(_nest(path + ["embeds", i, "fields"], _err(
                "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")), rule="more than 25 embed fields")
        for f in fields:
            total += len(f.get("name") or "") + len(f.get("value") or "")
        total += len((e.get("footer") or {}).get("text") or "") + len((e.get("author") or {}).get("name") or "")
    if total > 6000:
        raise form_error(_nest(path + ["embeds"], _err("MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")),
                         rule="embeds longer than 6000 characters in total")
    am = body.get("allowed_mentions")
    if am:
        parse = set(am.get("parse") or [])
        for kind in ("users", "roles"):
            if kind in parse and am.get(kind):
                raise form_error(_nest(path + ["allowed_mentions"], _err(
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.')),
                    rule="allowed_mentions parse and explicit list both given")
    if "components" in body and body["components"] is not None:
        validate_components(body["components"], path + ["components"],
                            v2=bool((body.get("flags") or 0) & IS_COMPONENTS_V2))


def validate_components(rows: list, path: list, v2: bool = False) -> None:
    """Action rows: at most 5; each holds 1–5 buttons or exactly one select of 1–25 options."""
    if v2:
        return  # Components V2 layouts are accepted as they are (the bot does not use them).
    if len(rows) > MAX_ROWS:
        raise form_error(_nest(path, _err("BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROWS} or fewer in length.")),
                         rule=f"more than {MAX_ROWS} action rows ({len(rows)})")
    seen: set[str] = set()
    for r, row in enumerate(rows):
        if row.get("type") != 1:
            raise form_error(_nest(path + [r, "type"], _err("UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (1,).")),
                             rule="top-level component is not an action row")
        items = row.get("components") or []
        if not items:
            raise form_error(_nest(path + [r, "components"], _err("BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length.")),
                             rule="empty action row")
        if len(items) > MAX_ROW_BUTTONS:
            raise form_error(_nest(path + [r, "components"], _err(
                "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROW_BUTTONS} or fewer in length.")),
                rule=f"more than {MAX_ROW_BUTTONS} components in a row ({len(items)})")
        has_select = any(c.get("type") in (3, 5, 6, 7, 8) for c in items)
        if has_select and len(items) > 1:
            raise form_error(_nest(path + [r, "components"], _err(
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "The specified component exceeds the maximum width")),
                rule="a select menu shares its action row")
        for c, comp in enumerate(items):
            here = path + [r, "components", c]
            ctype = comp.get("type")
            cid = comp.get("custom_id")
            if cid is not None:
                if not 1 <= len(cid) <= MAX_CUSTOM_ID:
                    raise form_error(_nest(here + ["custom_id"], _err(
                        "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {MAX_CUSTOM_ID} in length.")),
                        rule="custom_id longer than 100 characters")
                if cid in seen:
                    raise form_error(_nest(here + ["custom_id"], _err(
                        "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated")),
                        rule=f"duplicate custom_id {cid!r}")
                seen.add(cid)
            if ctype == 2:
                style = comp.get("style")
                if style == 5:
                    if not comp.get("url") or cid:
                        raise form_error(_nest(here, _err("BUTTON_COMPONENT_INVALID_URL", "A link button needs a url and no custom_id.")),
                                         rule="link button without url")
                elif style != 6 and not cid:
                    raise form_error(_nest(here + ["custom_id"], _err("BASE_TYPE_REQUIRED", "This field is required")),
                                     rule="button without custom_id")
                if len(comp.get("label") or "") > 80:
                    raise form_error(_nest(here + ["label"], _err("BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")),
                                     rule="button label longer than 80")
            elif ctype == 3:
                options = comp.get("options") or []
                if not 1 <= len(options) <= MAX_SELECT_OPTIONS:
                    raise form_error(_nest(here + ["options"], _err(
                        "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {MAX_SELECT_OPTIONS} in length.")),
                        rule=f"select menu with {len(options)} options (1–{MAX_SELECT_OPTIONS} allowed)")
                values = [o.get("value") for o in options]
                if len(set(values)) != len(values):
                    raise form_error(_nest(here + ["options"], _err(
                        "SELECT_COMPONENT_OPTION_VALUE_DUPLICATED", "Select component option values cannot be duplicated")),
                        rule="duplicate select option values")
                for o_i, o in enumerate(options):
                    for key, limit in (("label", 100), ("value", 100), ("description", 100)):
                        if len(o.get(key) or "") > limit:
                            raise form_error(_nest(here + ["options", o_i, key], _err(
                                "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")),
                                rule=f"select option {key} too long")
                lo, hi = comp.get("min_values", 1), comp.get("max_values", 1)
                if not (0 <= lo <= 25 and 1 <= hi <= 25 and lo <= hi and hi <= len(options)):
                    raise form_error(_nest(here + ["max_values"], _err(
                        "BASE_TYPE_BAD_INT", "min_values/max_values out of range")),
                        rule="select min_values/max_values out of range")
                if len(comp.get("placeholder") or "") > 150:
                    raise form_error(_nest(here + ["placeholder"], _err("BASE_TYPE_MAX_LENGTH", "Must be 150 or fewer in length.")),
                                     rule="select placeholder longer than 150")
            elif ctype in (5, 6, 7, 8):
                if not cid:
                    raise form_error(_nest(here + ["custom_id"], _err("BASE_TYPE_REQUIRED", "This field is required")),
                                     rule="select without custom_id")
            else:
                raise form_error(_nest(here + ["type"], _err("UNION_TYPE_CHOICES", f"Invalid component type {ctype}")),
                                 rule=f"component type {ctype} inside an action row")


def check_not_empty(content: str, embeds: list, attachments: list, components: list) -> None:
    if not (content or embeds or attachments or components):
        raise ApiError(400, 50006, "Cannot send an empty message", rule="empty message")


# ---------------------------------------------------------------------------------------------------------
# Application command sync
# ---------------------------------------------------------------------------------------------------------
COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")


def validate_commands(commands: list) -> None:
    """The checks Discord makes on a bulk overwrite of application commands."""
    if len(commands) > 100:
        raise form_error(_err("BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."), rule="more than 100 commands")
    names = set()
    for i, cmd in enumerate(commands):
        ctype = cmd.get("type", 1)
        name = cmd.get("name") or ""
        if (ctype, name) in names:
            raise form_error({str(i): {"name": _err("APPLICATION_COMMANDS_DUPLICATE_NAME",
                                                     f"Application command names must be unique ({name})")}},
                             rule=f"duplicate command name {name}")
        names.add((ctype, name))
        if ctype == 1:
            _check_chat_input(cmd, [str(i)])
            size = _command_chars(cmd)
            if size > 8000:
                raise form_error({str(i): _err("APPLICATION_COMMAND_TOO_LARGE",
                                               f"Command exceeds maximum size (8000) ({size})")},
                                 rule=f"command {name!r} is {size} characters (names, descriptions, choices; max 8000)")


def _command_chars(item: dict) -> int:
    """What counts toward Discord's 8,000-character limit per command."""
    n = len(item.get("name") or "") + len(item.get("description") or "")
    for choice in item.get("choices") or []:
        n += len(str(choice.get("name") or "")) + len(str(choice.get("value") or ""))
    return n + sum(_command_chars(o) for o in item.get("options") or [])


def _check_chat_input(item: dict, path: list, depth: int = 0) -> None:
    name = item.get("name") or ""
    if not COMMAND_NAME.match(name) or name != name.lower():
        raise form_error(_nest(path + ["name"], _err("APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid ({name!r})")),
                         rule=f"invalid command/option name {name!r}")
    desc = item.get("description") or ""
    if not 1 <= len(desc) <= 100:
        raise form_error(_nest(path + ["description"], _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")),
                         rule=f"description of {name!r} must be 1–100 characters")
    options = item.get("options") or []
    if len(options) > 25:
        raise form_error(_nest(path + ["options"], _err("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")),
                         rule=f"more than 25 options on {name!r}")
    seen_optional = False
    for j, opt in enumerate(options):
        here = path + ["options", str(j)]
        if opt.get("type") in (1, 2):
            if depth >= 2:
                raise form_error(_nest(here, _err("APPLICATION_COMMAND_TOO_DEEP", "Subcommands nest too deeply")),
                                 rule="subcommands nested too deeply")
            _check_chat_input(opt, here, depth + 1)
            continue
        _check_chat_input({**opt, "options": []}, here, depth + 1)
        if opt.get("required"):
            if seen_optional:
                raise form_error(_nest(here + ["required"], _err(
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required options must be placed before non-required options")),
                    rule=f"required option {opt.get('name')!r} after an optional one")
        else:
            seen_optional = True
        if len(opt.get("choices") or []) > 25:
            raise form_error(_nest(here + ["choices"], _err("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")),
                             rule="more than 25 choices")
        for c, choice in enumerate(opt.get("choices") or []):
            if not 1 <= len(str(choice.get("name") or "")) <= 100:
                raise form_error(_nest(here + ["choices", str(c), "name"], _err(
                    "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")),
                    rule=f"choice name of {opt.get('name')!r} must be 1–100 characters")

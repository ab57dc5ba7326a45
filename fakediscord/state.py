"""The state every part of the fake Discord shares, declared once.

:class:`~fakediscord.fake.FakeDiscord` is assembled from mixins, one concern per module; they all read and
write one world. :class:`DiscordState` is their common base: it declares that world's attributes (created
in ``FakeDiscord.__init__``) and the methods one part calls on another, so that readers and the type
checker see what a mixin may use. It holds no code. What the world objects (guilds, interactions) use
of it is :class:`~fakediscord.objects.Host`, its base: they are built by the parts and cannot import them.
Types come from the leaf modules (model, objects, records, interaction) only, so nothing here imports a
part.
"""
from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fakediscord.objects import Host

if TYPE_CHECKING:
    from aiohttp import web

    from fakediscord.interaction import FakeInteraction
    from fakediscord.model import Attachment, FakeMessage
    from fakediscord.objects import FakeChannel, FakeGuild, FakeUser
    from fakediscord.records import (
        FaultRule,
        GatewayConnection,
        GatewaySession,
        RateLimit,
        RecordedRequest,
        UploadedFile,
    )

    #: (methods, path regex, handler, needs the bot token)
    Route = tuple[set[str], re.Pattern[str], Callable[..., Awaitable[Any]], bool]


class DiscordState(Host):
    """The attributes and cross-part methods of :class:`~fakediscord.fake.FakeDiscord` (see the module);
    those the world objects use too (``clock``, ``ids``, ``bot_user``, ``channels``, ``add_user``…) are
    declared in :class:`~fakediscord.objects.Host`, which this extends."""

    # the world (its clock, ids, bot_user and channels: see Host) -------------------------------------------
    application_id: int
    bot_token: str
    users: dict[int, FakeUser]
    #: the application's owner (a bot owner for the bot; in no guild unless a test adds them)
    app_owner: FakeUser
    #: the application's team (see ``set_team``); None = owned by ``app_owner`` alone
    app_team: dict | None
    guilds: dict[int, FakeGuild]
    #: synced application commands: None → global list, guild id → that guild's list
    commands: dict[int | None, list[dict]]
    interactions: dict[int, FakeInteraction]
    _messages: dict[int, FakeMessage]
    _by_channel: dict[int, list[FakeMessage]]
    _attachments: dict[int, Attachment]

    # what happened -----------------------------------------------------------------------------------------
    requests: list[RecordedRequest]
    #: attachment ids downloaded from the fake's CDN (``GET /attachments/...``), in order
    downloads: list[int]
    #: seconds the fake's CDN waits before serving an attachment (a slow download)
    download_delay_s: float
    unknown_routes: list[tuple[str, str]]
    #: Discord rules the bot broke: {"rule", "method", "path", "status", "code", "message"}
    violations: list[dict]
    gateway_stats: collections.Counter[str]
    _subscribers: list[asyncio.Queue]
    _waiters: list[tuple[Callable[[FakeMessage], bool], asyncio.Future]]

    # faults, the gateway, the HTTP server ------------------------------------------------------------------
    _faults: list[FaultRule]
    _limits: list[RateLimit]
    _sessions: dict[str, GatewaySession]
    #: ``shards`` in the answer to GET /gateway/bot: the count discord.py's AutoShardedClient runs when it
    #: is given no shard_count
    recommended_shards: int
    _conns: set[GatewayConnection]
    _runner: web.AppRunner | None
    _routes: list[Route]
    host: str
    port: int

    if TYPE_CHECKING:  # methods one part calls on another; each is defined by the part named
        # fake.py
        @property
        def base_url(self) -> str: ...
        @property
        def gateway_url(self) -> str: ...
        def _emit(self, event: dict) -> None: ...
        def _violation(self, rule: str, method: str, path: str, status: int, code: int,
                       message: str) -> None: ...
        # world.py
        def dm_channel(self, user: FakeUser) -> FakeChannel: ...
        def command(self, name: str, guild: FakeGuild | None = None) -> dict: ...
        # messages.py
        def message(self, message_id: int | FakeMessage) -> FakeMessage: ...
        def _store_new(self, msg: FakeMessage) -> None: ...
        def _wake(self, msg: FakeMessage) -> None: ...
        def _new_message(self, channel: FakeChannel, body: dict, files: list[UploadedFile], *, upload_limit: int,
                         path: list | None = None, interaction: FakeInteraction | None = None,
                         flags_allowed: int = ..., msg_type: int = 0,
                         author: FakeUser | None = None) -> FakeMessage: ...
        def _edit_message(self, msg: FakeMessage, body: dict, files: list[UploadedFile], *, upload_limit: int,
                          path: list | None = None, allow_flags: bool = True) -> FakeMessage: ...
        def _delete_message(self, msg: FakeMessage) -> None: ...
        # gateway.py
        def _dispatch(self, event: str, data: dict, *, guild_id: int | None, intent: int = 0,
                      needs_content: bool = False) -> None: ...
        def _message_event(self, name: str, msg: FakeMessage) -> None: ...
        def _reaction_event(self, name: str, msg: FakeMessage, user_id: int, emoji: str) -> None: ...
        # faults.py
        def _take_rate_limits(self, method: str, path: str) -> tuple[web.Response | None, dict]: ...
        def _fault_response(self, fault: FaultRule, status: int) -> web.Response: ...
        # routes/interactions.py
        def _check_deadlines(self) -> None: ...

"""FakeDiscord: the fake Discord server assembled from its parts, with all of its state and its lifecycle.

See :mod:`bot.sandbox` for the layout and docs/fake-discord.md for the test API. Everything runs on the
caller's asyncio loop.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import inspect
import logging
import secrets
import time
from typing import Any
from collections.abc import Callable

from aiohttp import web

from bot.sandbox.actions import UserActions
from bot.sandbox.faults import Faults, FaultRule, RateLimit
from bot.sandbox.gateway import Gateway, GatewaySession, _Conn
from bot.sandbox.interaction import FakeInteraction
from bot.sandbox.messages import MessageStore
from bot.sandbox.model import Attachment, Clock, FakeMessage, Snowflakes
from bot.sandbox.rest import RecordedRequest, RestServer
from bot.sandbox.routes.application import ApplicationRoutes
from bot.sandbox.routes.channels import ChannelRoutes
from bot.sandbox.routes.interactions import InteractionRoutes
from bot.sandbox.world import FakeChannel, FakeGuild, FakeUser, World

log = logging.getLogger("bot.sandbox")


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


class FakeDiscord(World, UserActions, MessageStore, Gateway, Faults, RestServer, ApplicationRoutes,
                  InteractionRoutes, ChannelRoutes):
    """A small Discord: REST v10 and the gateway on 127.0.0.1, with the rules a bot must follow.

    Each base class adds the methods of one concern (see :mod:`bot.sandbox`); all attributes are created
    here, in ``__init__``.
    """

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
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeDiscord:
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

    async def __aenter__(self) -> FakeDiscord:
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

    # what happened: events for subscribers, broken rules ------------------------------------------------
    def subscribe(self) -> asyncio.Queue:
        """A queue of event dicts (their shapes: docs/fake-discord.md); call unsubscribe() when done."""
        q: asyncio.Queue = asyncio.Queue()
        self._subscribers.append(q)
        return q

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    def _emit(self, event: dict) -> None:
        for q in self._subscribers:
            q.put_nowait(event)

    def _violation(self, rule: str, method: str, path: str, status: int, code: int, message: str) -> None:
        entry = {"rule": rule, "method": method, "path": path, "status": status, "code": code, "message": message}
        self.violations.append(entry)
        log.warning("Discord rule broken: %s (%s %s → %s %s)", rule, method, path, status, code)
        self._emit({"type": "violation", **entry})

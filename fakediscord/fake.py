"""FakeDiscord: the fake Discord server assembled from its parts, with all of its state and its lifecycle.

See :mod:`fakediscord` for the layout and docs/fake-discord.md for the test API. Everything runs on the
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
from collections.abc import Callable
from typing import Any

from aiohttp import web

from fakediscord.actions import UserActions
from fakediscord.faults import Faults
from fakediscord.gateway import Gateway
from fakediscord.messages import MessageStore
from fakediscord.model import Clock, Snowflakes
from fakediscord.objects import FakeUser
from fakediscord.rest import RestServer
from fakediscord.world import World

log = logging.getLogger("fakediscord")


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


class FakeDiscord(World, UserActions, MessageStore, Gateway, Faults, RestServer):
    """A small Discord: REST v10 and the gateway on 127.0.0.1, with the rules a bot must follow.

    Each base class adds the methods of one concern (see :mod:`fakediscord`); the attributes they share are
    declared in :class:`~fakediscord.state.DiscordState` and created here, in ``__init__``.
    """

    def __init__(self, *, bot_name: str = "morph-bot") -> None:
        self.clock = Clock()
        self.clock._listeners.append(self._check_deadlines)
        self.ids = Snowflakes(self.clock)
        self.bot_user = FakeUser(self.ids.next(), bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.bot_token = (base64.urlsafe_b64encode(str(self.bot_user.id).encode()).decode().rstrip("=")
                          + ".fake." + secrets.token_urlsafe(27))
        self.users = {self.bot_user.id: self.bot_user}
        self.app_owner = self.add_user("app-developer")
        self.app_team = None
        self.guilds = {}
        self.channels = {}
        self.commands = {}
        self.requests = []
        self.unknown_routes = []
        self.violations = []
        self.interactions = {}
        self.gateway_stats = collections.Counter()
        self._messages = {}
        self._by_channel = collections.defaultdict(list)
        self._attachments = {}
        self.downloads = []
        self.download_delay_s = 0.0
        self._faults = []
        self._limits = []
        self._sessions = {}
        self.recommended_shards = 1
        self._conns = set()
        self._subscribers = []
        self._waiters = []
        self._runner = None
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
        self.host, self.port = host, self._runner.addresses[0][1]
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

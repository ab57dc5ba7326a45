"""The fake's REST front: the route table, reading requests, auth, recording, faults and limits, 404s.

The handlers live in :mod:`fakediscord.routes` (one module per area); this module decides which one runs
and turns its result (a dict/list, None, or an ApiError) into Discord's answer.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from fakediscord.model import ApiError
from fakediscord.records import RecordedRequest, UploadedFile
from fakediscord.routes.application import ApplicationRoutes
from fakediscord.routes.channels import ChannelRoutes
from fakediscord.routes.interactions import InteractionRoutes

if TYPE_CHECKING:
    from fakediscord.state import Route

log = logging.getLogger("fakediscord")


@dataclass
class _Req:
    method: str
    path: str
    query: Any
    json: Any
    files: list[UploadedFile]
    headers: Any


def json_response(status: int, obj: Any, headers: dict | None = None) -> web.Response:
    # discord.py parses JSON only when Content-Type is exactly "application/json".
    return web.Response(status=status, body=json.dumps(obj).encode(),
                        headers={"Content-Type": "application/json", **(headers or {})})


class RestServer(ApplicationRoutes, InteractionRoutes, ChannelRoutes):
    """FakeDiscord's HTTP front, over the handlers of :mod:`fakediscord.routes` (a mixin: the state it
    shares is declared in :class:`~fakediscord.state.DiscordState`)."""

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        rx = re.compile(path_regex)
        return [r for r in self.requests if method in ("*", r.method) and rx.search(r.path)]

    def _route_table(self) -> list[Route]:
        r: list[tuple[str, str, Callable[..., Awaitable[Any]], bool]] = [
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
        return self._not_found(request.method, request.path)

    def _not_found(self, method: str, path: str) -> web.Response:
        """A route Discord does not have: recorded in ``unknown_routes`` (the e2e tests fail on any), logged,
        answered 404 as Discord does."""
        self.unknown_routes.append((method, path))
        log.warning("fake-discord: unknown route %s %s", method, path)
        return json_response(404, {"message": "404: Not Found", "code": 0})

    async def _read(self, request: web.Request, path: str) -> _Req:
        payload: Any = None
        files: list[UploadedFile] = []
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:  # type: ignore[misc]  # aiohttp types __aiter__ with Self, which mypy's 3.10 mode rejects
                if not isinstance(part, BodyPartReader):
                    raise web.HTTPBadRequest(text="nested multipart bodies are not supported")
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
                return self._fault_response(fault, fault.status)

        limited, rl_headers = self._take_rate_limits(req.method, path)
        if limited is not None:
            rec.status = 429
            return limited

        route = next(((handler, needs_auth, m) for methods, rx, handler, needs_auth in self._routes
                      if (m := rx.fullmatch(path)) and req.method in methods), None)
        if route is None:
            rec.status = 404
            return self._not_found(req.method, path)
        handler, needs_auth, m = route

        if needs_auth and request.headers.get("Authorization") != f"Bot {self.bot_token}":
            rec.status = 401
            self._violation("bad or missing bot token", req.method, path, 401, 0, "401: Unauthorized")
            return json_response(401, {"message": "401: Unauthorized", "code": 0})
        try:
            result = await handler(req, **{k: v for k, v in m.groupdict().items()})
        except ApiError as err:
            rec.status = err.status
            self._violation(err.rule or err.message, req.method, path, err.status, err.code, err.message)
            return json_response(err.status, err.body())
        if fault is not None and fault.status is not None:  # apply=True: done, but the answer is lost
            rec.status, rec.injected = fault.status, True
            return self._fault_response(fault, fault.status)
        if isinstance(result, web.StreamResponse):
            rec.status = result.status
            return result
        if result is None:
            rec.status = 204
            return web.Response(status=204, headers=rl_headers)
        rec.status = 200
        return json_response(200, result, rl_headers)

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        att = self._attachments.get(int(request.match_info["aid"]))
        self.downloads.append(int(request.match_info["aid"]))
        if self.download_delay_s:
            await asyncio.sleep(self.download_delay_s)
        if att is None:
            return web.Response(status=404)
        return web.Response(body=att.data, headers={"Content-Type": att.media_type or "application/octet-stream"})

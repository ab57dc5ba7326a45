"""The playground's web server: the page, a small JSON API and a server-sent event stream over a FakeDiscord.

The page never talks to the bot directly. Everything it does goes through the fake Discord exactly as a
Discord client would: a typed command becomes ``fake.slash(...)`` (a real INTERACTION_CREATE on the
gateway), a click ``fake.click(...)``, a pick in a menu ``fake.select(...)``, a reaction ``fake.react(...)``.
What the bot answers arrives as the fake's events (``fake.subscribe()``) and is pushed to the page.

HTTP API (all JSON; ids are strings because snowflakes do not fit in a JavaScript number):

    GET  /                                   the page (static/index.html)
    GET  /static/{file}                      app.js, style.css
    GET  /api/state?user=ID&channel=ID       guild, channel, channels, members, banner, commands, messages, queue
    GET  /api/events?user=ID&channel=ID      text/event-stream: message, delete, queue, commands, notice
    GET  /api/queue                          {"jobs": [...]} read from the bot's Store
    POST /api/command  {user, text, channel} "/morph dog cat frames:16" → slash command in that channel
    POST /api/click    {user, message, custom_id}
    POST /api/select   {user, message, custom_id, values: [...]}
    POST /api/react    {user, message, emoji}   toggles the member's reaction, as Discord's client does
    GET  /attachments/{id}/{filename}        the bytes the bot uploaded (kept by the fake)

Errors are ``{"error": "message to show"}`` with status 400 (bad input), 403 (refused: see
:mod:`bot.playground.guard`), 404 (unknown member/message), 415 (a POST body not sent as
``application/json``) or 503 (the bot is not connected yet).

What the page shows is built in :mod:`bot.playground.page`; who may call is decided in
:mod:`bot.playground.guard`.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import mimetypes
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from bot import i18n
from bot.i18n import language
from bot.playground import commands as cmdparse
from bot.playground.guard import TOKEN_PLACEHOLDER, guard
from bot.playground.page import PageView, page_texts
from bot.playground.problems import ApiProblem, json_response, problems
from fakediscord import FakeDiscord, FakeGuild, FakeMember, FakeMessage, OptionRejected

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
KEEPALIVE_S = 15.0
#: Largest API request: a command with two attached 10 MiB pictures, base64 in JSON, and some room.
MAX_BODY = 32 * 1024 * 1024
#: Pictures the page offers to attach to /morph-images: two toy scenes (drawn by toykit/shapes.py) that the toy
#: safety checker passes (it flags yellow stars: a suggested picture must not be refused in #morph).
TOY_PICTURES = ("toy-red-circle.png", "toy-white-heart.png")


class _Client:
    """One open event stream: the member it shows a channel to, that channel, and its outgoing queue."""

    def __init__(self, user_id: int, channel_id: int) -> None:
        self.user_id = user_id
        self.channel_id = channel_id
        self.queue: asyncio.Queue = asyncio.Queue()


def _files(raw) -> list[tuple[str, bytes]]:
    """The files attached to a command: ``[{"name": "cat.png", "data": "<base64>"}, …]`` → (name, bytes)."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(f, dict) for f in raw):
        raise ApiProblem("files must be a list of {name, data} objects")
    out = []
    for f in raw:
        name = str(f.get("name") or "picture").replace("/", "_").replace("\\", "_")[:100] or "picture"
        try:
            data = base64.b64decode(str(f.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise ApiProblem(f"the file {name!r} is not base64") from None
        out.append((name, data))
    return out


class PlaygroundServer:
    """Serve ``channel`` of ``guild`` (and ``others``, which the page can switch to: the age-restricted one)
    to browsers, acting as ``members``.

    ``jobs`` is an async callable returning the queue panel rows (see
    :func:`bot.playground.page.store_jobs`); ``banner`` is shown at the top of the page when set (e.g. the
    built-in model notice); ``examples`` are commands the page suggests (the first in the command box's
    placeholder, all of them in the Commands panel).
    """

    def __init__(self, fake: FakeDiscord, guild: FakeGuild, channel, members: list[FakeMember], *,
                 jobs: Callable[[], Awaitable[list[dict]]] | None = None, banner: str | None = None,
                 model: str = "", examples: list[str] | None = None, others: list | None = None) -> None:
        self.fake, self.guild, self.channel = fake, guild, channel
        self.members = list(members)
        self.jobs = jobs
        self.banner = banner
        self.model = model
        self.view = PageView(fake, guild, channel, self.members, others)
        self.examples = list(examples or [])
        self._clients: set[_Client] = set()
        self._events: asyncio.Queue | None = None
        self._pump: asyncio.Task | None = None
        self._queue_task: asyncio.Task | None = None
        self._runner: web.AppRunner | None = None
        self.host, self.port = "127.0.0.1", 0
        #: Random per run, embedded in the page; every /api/ call must carry it.
        self.token = secrets.token_urlsafe(32)

    # lifecycle ------------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        # room for a command with two attached pictures (base64 in the JSON body)
        app = web.Application(client_max_size=MAX_BODY, middlewares=[problems, guard(self)])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/events", self._stream)
        app.router.add_get("/api/queue", self._queue)
        app.router.add_post("/api/command", self._command)
        app.router.add_post("/api/click", self._click)
        app.router.add_post("/api/select", self._select)
        app.router.add_post("/api/react", self._react)
        app.router.add_get("/attachments/{aid}/{filename}", self._attachment)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 = any free port) and return the page's URL."""
        self._events = self.fake.subscribe()
        self._pump = asyncio.create_task(self._pump_events(), name="playground-events")
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host, self.port = host, self._runner.addresses[0][1]
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        for client in list(self._clients):
            client.queue.put_nowait(None)  # ends its stream
        for task in (self._pump, self._queue_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._events is not None:
            self.fake.unsubscribe(self._events)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # the member a request names; the queue panel --------------------------------------------------------
    def member(self, user_id) -> FakeMember:
        try:
            uid = int(user_id)
        except (TypeError, ValueError):
            raise ApiProblem(f"unknown member {user_id!r}", 404) from None
        for m in self.members:
            if m.id == uid:
                return m
        raise ApiProblem(f"unknown member {user_id!r}", 404)

    async def queue_rows(self) -> list[dict]:
        if self.jobs is None:
            return []
        try:
            return await self.jobs()
        except Exception:  # the panel is a convenience: never break the page for it
            log.exception("reading the queue for the playground failed")
            return []

    # HTTP handlers --------------------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        page = (STATIC / "index.html").read_text(encoding="utf-8").replace(TOKEN_PLACEHOLDER, self.token)
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    def _user_param(self, request: web.Request) -> FakeMember:
        user = request.query.get("user")
        return self.member(user) if user else self.members[0]

    def _channel(self, channel_id):
        """The shown channel ``channel_id`` names (None: the first one)."""
        try:
            return self.view.find_channel(channel_id)
        except KeyError:
            raise ApiProblem(f"unknown channel {channel_id!r}", 404) from None

    async def _state(self, request: web.Request) -> web.Response:
        me = self._user_param(request)
        channel = self._channel(request.query.get("channel"))
        return json_response({
            "guild": {"id": str(self.guild.id), "name": self.guild.name},
            "channel": {"id": str(channel.id), "name": channel.name, "nsfw": bool(channel.nsfw)},
            "channels": self.view.channel_rows(),
            "members": self.view.member_rows(), "me": str(me.id), "banner": self.banner, "model": self.model,
            "examples": self.examples, "pictures": [f"/static/{name}" for name in TOY_PICTURES],
            "bot": {"id": str(self.fake.bot_user.id), "name": self.fake.bot_user.name,
                    "connected": self.fake.connected},
            "commands": cmdparse.help_entries(self.view.synced_commands()),
            "messages": self.view.channel_messages(me.id, channel), "queue": await self.queue_rows(),
            "lang": language(me.user.locale), "ui": page_texts(me.user.locale),
        })

    async def _queue(self, request: web.Request) -> web.Response:
        return json_response({"jobs": await self.queue_rows()})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        me = self._user_param(request)
        channel = self._channel(request.query.get("channel"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        client = _Client(me.id, channel.id)
        self._clients.add(client)
        try:
            await resp.write(b": connected\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(client.queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                if item is None:
                    break
                event, data = item
                await resp.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(client)
        return resp

    async def _body(self, request: web.Request) -> dict:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise ApiProblem("the request body must be JSON") from None
        if not isinstance(body, dict):
            raise ApiProblem("the request body must be a JSON object")
        return body

    def _message(self, message_id, member: FakeMember) -> FakeMessage:
        try:
            msg = self.fake.message(int(message_id))
        except (KeyError, TypeError, ValueError):
            raise ApiProblem(f"unknown message {message_id!r}", 404) from None
        if not self.view.visible_to(msg, member.id):
            raise ApiProblem(f"unknown message {message_id!r}", 404)
        return msg

    def _need_bot(self, member: FakeMember) -> None:
        if not self.fake.connected:
            raise ApiProblem(i18n.text(member.user.locale)._("The bot is not connected yet; try again in a moment."),
                             503)

    async def _command(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        member = self.member(body.get("user"))
        channel = self._channel(body.get("channel"))
        text = str(body.get("text") or "")
        files = _files(body.get("files"))
        self._need_bot(member)
        names = {m.name.lower(): str(m.id) for m in self.guild.members.values()}
        synced = self.view.synced_commands()
        try:
            parsed = cmdparse.parse(text, synced, names, files=len(files))
        except cmdparse.CommandError as err:
            raise ApiProblem(err.text(member.user.locale)) from None
        # attached files: uploaded to the fake Discord, which serves them to the bot like Discord's CDN
        options: dict = {name: self.fake.upload(filename, data) for name, (filename, data) in
                         zip(parsed.attachments, files, strict=True)}
        for name, value in parsed.options.items():
            opt = cmdparse.option_schema(synced, parsed, name)
            if opt["type"] in (cmdparse.USER, cmdparse.MENTIONABLE):
                value = self.guild.members.get(int(value)) or self.fake.users.get(int(value))
                if value is None:
                    raise ApiProblem(i18n.text(member.user.locale)._("{name}: no such member", name=name))
            options[name] = value
        it = self._send(lambda: self.fake.slash(member, " ".join([parsed.name, *parsed.path]),
                                                in_channel=channel, options=options))
        return json_response({"ok": True, "interaction": str(it.id)})

    async def _target(self, request: web.Request) -> tuple[dict, FakeMember, FakeMessage]:
        """The body of a click/select/react and the member and message it names."""
        body = await self._body(request)
        member = self.member(body.get("user"))
        return body, member, self._message(body.get("message"), member)

    async def _click(self, request: web.Request) -> web.Response:
        body, member, msg = await self._target(request)
        self._need_bot(member)
        it = self._send(lambda: self.fake.click(member, msg, str(body.get("custom_id") or "")))
        return json_response({"ok": True, "interaction": str(it.id)})

    async def _select(self, request: web.Request) -> web.Response:
        body, member, msg = await self._target(request)
        values = body.get("values")
        if not isinstance(values, list):
            raise ApiProblem("values must be a list")
        self._need_bot(member)
        it = self._send(lambda: self.fake.select(member, msg, str(body.get("custom_id") or ""),
                                                 [str(v) for v in values]))
        return json_response({"ok": True, "interaction": str(it.id)})

    async def _react(self, request: web.Request) -> web.Response:
        body, member, msg = await self._target(request)
        emoji = str(body.get("emoji") or "")
        if not emoji or len(emoji) > 64:
            raise ApiProblem("emoji is missing")
        if msg.ephemeral:
            raise ApiProblem(i18n.text(member.user.locale)._("Ephemeral messages cannot have reactions."))
        if member.id in msg.reactions.get(emoji, []):
            self.fake.unreact(member, msg, emoji)
            added = False
        else:
            self._send(lambda: self.fake.react(member, msg, emoji))
            added = True
        return json_response({"ok": True, "added": added})

    @staticmethod
    def _send(action):
        """Run a fake-Discord action, turning what Discord's client would refuse into an ApiProblem.
        (Callers that send an interaction check :meth:`_need_bot` just before, so the bot is there.)"""
        try:
            return action()
        except OptionRejected as err:
            raise ApiProblem(str(err)) from None

    async def _attachment(self, request: web.Request) -> web.Response:
        try:
            data = self.fake.attachment_bytes(int(request.match_info["aid"]))
        except (KeyError, ValueError):
            raise web.HTTPNotFound() from None
        ctype = mimetypes.guess_type(request.match_info["filename"])[0] or "application/octet-stream"
        return web.Response(body=data, content_type=ctype,
                            headers={"Cache-Control": "max-age=86400, immutable",
                                     "X-Content-Type-Options": "nosniff"})

    # events from the fake → open streams ----------------------------------------------------------------
    def _broadcast(self, event: str, data: dict, *, only: int | None = None, channel_id: int | None = None) -> None:
        for client in list(self._clients):
            if (only is None or client.user_id == only) and (channel_id is None or client.channel_id == channel_id):
                client.queue.put_nowait((event, data))

    def _send_message(self, msg: FakeMessage) -> None:
        if msg.deleted:
            self._broadcast("delete", {"id": str(msg.id)}, channel_id=msg.channel_id)
            return
        if not any(msg.channel_id == c.id for c in self.view.channels):
            return
        data = self.view.page_message(msg)
        for client in list(self._clients):
            if client.channel_id == msg.channel_id and self.view.visible_to(msg, client.user_id):
                client.queue.put_nowait(("message", data))

    async def _pump_events(self) -> None:
        assert self._events is not None
        while True:
            ev = await self._events.get()
            try:
                self._handle(ev)
            except Exception:  # one odd event must not stop the page's updates
                log.exception("playground: could not forward event %r", ev.get("type"))

    def _handle(self, ev: dict) -> None:
        kind = ev.get("type")
        if kind in ("message_create", "message_update"):
            with contextlib.suppress(KeyError):
                self._send_message(self.fake.message(int(ev["message"]["id"])))
        elif kind == "message_delete":
            self._broadcast("delete", {"id": str(ev["message_id"])}, channel_id=int(ev["channel_id"]))
        elif kind in ("reaction_add", "reaction_remove"):
            with contextlib.suppress(KeyError):
                self._send_message(self.fake.message(int(ev["message_id"])))
        elif kind == "interaction_failed":
            it = self.fake.interactions.get(ev.get("interaction_id", 0))
            if it is not None:
                # what Discord's client tells the member (in their language; the reason is the fake's own words)
                said = i18n.text(it.user.locale)._("This interaction failed: {reason}.", reason=ev.get("reason"))
                self._broadcast("notice", {"text": said, "error": True}, only=it.user.id)
        elif kind == "violation":
            self._broadcast("notice", {"text": f"The bot broke a Discord rule: {ev.get('rule')}", "error": True})
        elif kind == "commands_synced":
            self._broadcast("commands", {"commands": cmdparse.help_entries(self.view.synced_commands())})
        elif kind == "gateway" and ev.get("state") in ("identified", "resumed"):
            self._broadcast("reset", {})
        if kind in ("message_create", "message_update", "message_delete", "interaction_response"):
            self._schedule_queue_push()

    def _schedule_queue_push(self) -> None:
        """Push the queue panel soon after something changed (coalescing bursts of events)."""
        if self._queue_task is None or self._queue_task.done():
            self._queue_task = asyncio.create_task(self._push_queue())

    async def _push_queue(self) -> None:
        await asyncio.sleep(0.3)
        self._broadcast("queue", {"jobs": await self.queue_rows()})

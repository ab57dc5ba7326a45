"""The fake's gateway: sessions, HELLO/IDENTIFY/RESUME, shards, event dispatch and dropped connections.

JSON text frames only (no compression). A session outlives a dropped connection until it is resumed (the
missed events are replayed from its log) or invalidated. Sharding as on Discord
(https://discord.com/developers/docs/events/gateway#sharding): a session gets the events of its shard's
guilds only; DMs go to shard 0.
"""
from __future__ import annotations

import asyncio
import json
import secrets
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from fakediscord.model import (
    DIRECT_MESSAGE_REACTIONS,
    DIRECT_MESSAGES,
    GUILD_MEMBERS,
    GUILD_MESSAGE_REACTIONS,
    GUILD_MESSAGES,
    GUILDS,
    MESSAGE_CONTENT,
    FakeMessage,
    emoji_payload,
    identify_shard,
)
from fakediscord.records import GatewayConnection, GatewaySession
from fakediscord.state import DiscordState

if TYPE_CHECKING:
    from fakediscord.objects import FakeGuild


class Gateway(DiscordState):
    """FakeDiscord's gateway (a mixin: the state lives in FakeDiscord.__init__)."""

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

    # dispatching events ---------------------------------------------------------------------------------
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
        data: dict
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

    # the websocket --------------------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        conn = GatewayConnection(ws)
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

    def _detach(self, conn: GatewayConnection) -> None:
        if conn.session is not None and conn.session.conn is conn:
            conn.session.conn = None

    async def _writer(self, conn: GatewayConnection) -> None:
        try:
            while True:
                text = await conn.queue.get()
                await conn.ws.send_str(text)
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            pass

    async def _on_op(self, conn: GatewayConnection, frame: dict) -> None:
        op = frame.get("op")
        d: dict = frame.get("d") or {}
        if op == 1:
            conn.queue.put_nowait(json.dumps({"op": 11, "d": None, "s": None, "t": None}))
        elif op == 2:
            await self._identify(conn, d)
        elif op == 6:
            session = self._sessions.get(d.get("session_id", ""))
            seq = d.get("seq") or 0
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
            gid = int(d.get("guild_id") or 0)
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

    async def _identify(self, conn: GatewayConnection, d: dict) -> None:
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

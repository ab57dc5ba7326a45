"""Records the fake's parts keep: REST requests and uploads, injected faults and rate limits, gateway
sessions and connections.

Plain data, kept apart from the parts that fill them (:mod:`~fakediscord.rest`, :mod:`~fakediscord.faults`,
:mod:`~fakediscord.gateway`) so that :class:`~fakediscord.state.DiscordState` can name their types without
an import circle.
"""
from __future__ import annotations

import asyncio
import collections
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakediscord.model import shard_of


# REST ----------------------------------------------------------------------------------------------------
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


# faults and rate limits ----------------------------------------------------------------------------------
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


# the gateway ---------------------------------------------------------------------------------------------
class GatewaySession:
    """An identified gateway session; it outlives a dropped connection until it is resumed or invalidated.

    ``shard`` is IDENTIFY's ``(shard_id, shard_count)``, or None for an unsharded session, which gets the
    events of every guild. ``fake.sessions`` lists the live ones.
    """

    def __init__(self, sid: str, intents: int, shard: tuple[int, int] | None):
        self.id, self.intents, self.shard = sid, intents, shard
        self.seq = 0
        self.log: collections.deque = collections.deque(maxlen=20000)  # (seq, frame text) for RESUME
        self.conn: GatewayConnection | None = None

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


class GatewayConnection:
    """One websocket of the gateway: its outgoing queue and the session it carries (None before IDENTIFY)."""

    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.session: GatewaySession | None = None
        self.dropped = False
        self.writer: asyncio.Task | None = None

"""Helpers of the playground tests: the API as the page uses it (an SSE stream, a POST, a result with a GIF)."""
from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


class Stream:
    """An open /api/events stream, as the page's EventSource reads it."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.seen: list[tuple[str, dict]] = []

    async def next(self) -> tuple[str, dict]:
        event, data = "message", []
        while True:
            line = (await self.resp.content.readline()).decode()
            if line == "":
                raise EOFError("stream closed")
            line = line.rstrip("\n")
            if line.startswith(":"):
                continue
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                item = (event, json.loads("\n".join(data)))
                self.seen.append(item)
                return item

    async def wait_for(self, predicate, timeout: float = 60.0) -> dict:
        async def go():
            while True:
                event, data = await self.next()
                if predicate(event, data):
                    return data
        return await asyncio.wait_for(go(), timeout)

    async def seen_or_wait(self, predicate, timeout: float = 60.0) -> dict:
        """The first event seen so far that matches, else the next one that does (as :meth:`wait_for`)."""
        for event, data in self.seen:
            if predicate(event, data):
                return data
        return await self.wait_for(predicate, timeout)


@contextlib.asynccontextmanager
async def open_stream(http, user, channel: str | None = None):
    """``async with open_stream(http, member) as stream:`` the member's /api/events (of ``channel``, an id;
    None: the first channel), closed on exit."""
    params = {"user": str(user.id)} if channel is None else {"user": str(user.id), "channel": channel}
    resp = await http.get("/api/events", params=params, timeout=aiohttp.ClientTimeout(total=None))
    try:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        yield Stream(resp)
    finally:
        resp.close()


async def post(http, path, body, status=200):
    async with http.post(path, json=body) as resp:
        data = await resp.json()
        assert resp.status == status, data
        return data


def has_gif(event, data):
    return event == "message" and any(a["filename"].endswith(".gif") for a in data.get("attachments", []))

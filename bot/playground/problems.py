"""How the playground's API answers: JSON bodies, and problems the page shows as ``{"error": ...}``."""
from __future__ import annotations

import json

from aiohttp import web


class ApiProblem(Exception):
    """A request the page should show as an error message (``status`` is the HTTP status)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def json_response(obj, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(obj), status=status, content_type="application/json")


@web.middleware
async def problems(request: web.Request, handler) -> web.StreamResponse:
    """Answer an ApiProblem raised by any handler as ``{"error": ...}`` with its status."""
    try:
        return await handler(request)
    except ApiProblem as err:
        return json_response({"error": str(err)}, err.status)

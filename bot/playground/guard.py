"""Who may use the playground: only its own page, from this machine unless the operator allowed more.

Only the playground's own page may use the API (:func:`guard`, on every request): the ``Host`` header
must name this server (so a DNS-rebinding site cannot read the page), an ``Origin``, when sent, must be the
page's own, every ``/api/`` call must carry the random per-run token that the page embeds
(:attr:`~bot.playground.server.PlaygroundServer.token`; header ``X-Playground-Token``, or ``?token=`` for
the event stream), and a POST must be ``application/json`` (which a cross-site form or ``text/plain``
fetch cannot send without a CORS preflight, which this server never grants).
"""
from __future__ import annotations

import ipaddress
import secrets
import socket
from typing import Protocol

from aiohttp import web
from yarl import URL

from bot.playground.problems import ApiProblem

TOKEN_HEADER = "X-Playground-Token"
#: Where index.html carries the per-run token (``<meta name="playground-token" content="…">``).
TOKEN_PLACEHOLDER = "{{PLAYGROUND_TOKEN}}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a PLAYGROUND_HOST value) is reachable from this machine only."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, host: str, bound_port: int) -> bool:
    """``Host`` names this server: its port, and an IP address, ``localhost``, the configured host, or
    (bound to every interface) this machine's name. A DNS-rebinding page sends its own domain.

    ``host`` and ``bound_port`` are where the playground listens."""
    try:
        url = URL(f"http://{host_header}")
        name, port = (url.host or "").lower().rstrip("."), url.port
    except (TypeError, ValueError):
        return False
    if not name or port != bound_port:
        return False
    names = {"localhost", host.strip("[]").lower()}
    if host in ("0.0.0.0", "::"):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    if name in names:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class Guarded(Protocol):
    """What the guard reads of the server it protects (``PlaygroundServer``)."""

    host: str
    port: int
    token: str

    @property
    def url(self) -> str: ...


def guard(server: Guarded):
    """The middleware that checks every request to ``server`` (its host, port and token are read per
    request: they are known only once it listens)."""

    @web.middleware
    async def _guard(request: web.Request, handler) -> web.StreamResponse:
        """Refuse what did not come from this playground's own page (see the module docstring)."""
        host = request.headers.get("Host")
        if not host_allowed(host, server.host, server.port):
            raise ApiProblem(f"This playground answers only at its own address ({server.url}), not {host!r}.", 403)
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{host}".lower():
            raise ApiProblem("Cross-site request refused: only the playground's own page may use it.", 403)
        if request.path.startswith("/api/"):
            token = request.headers.get(TOKEN_HEADER) or request.query.get("token") or ""
            if not secrets.compare_digest(token.encode(), server.token.encode()):
                raise ApiProblem("Missing or wrong playground token: reload the page.", 403)
            if request.method == "POST" and request.content_type != "application/json":
                raise ApiProblem("Send the request body as JSON with Content-Type: application/json.", 415)
        return await handler(request)

    return _guard

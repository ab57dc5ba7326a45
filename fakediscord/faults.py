"""Faults and rate limits a test injects into the fake's REST API: errors, lost answers, delays, 429s.

A 429 carries Discord's headers and JSON ``retry_after``, so discord.py's own rate-limit handling retries.
:class:`~fakediscord.rest.RestServer` consults these rules before (and, for ``apply=True``, after)
running a request.
"""
from __future__ import annotations

import math
import re
import secrets

from aiohttp import web

from fakediscord.records import FaultRule, RateLimit
from fakediscord.rest import json_response
from fakediscord.state import DiscordState


class Faults(DiscordState):
    """FakeDiscord's fault injection and rate limits (a mixin: the state lives in FakeDiscord.__init__)."""

    def fail_route(self, method: str, path_regex: str, status: int, times: int | None = 1,
                   retry_after: float | None = None, *, body: dict | None = None, apply: bool = False) -> FaultRule:
        """Answer the next ``times`` requests matching ``method`` ("*" = any) and ``path_regex`` (searched in
        the path after /api/v10, e.g. r"^/channels/\\d+/messages$") with ``status``. A 429 carries Discord's
        headers and JSON ``retry_after`` (default 0.5 s), so discord.py's own rate-limit handling retries.
        ``apply=True`` performs the request first and then answers with the error (a lost response)."""
        if status == 429 and retry_after is None:
            retry_after = 0.5
        rule = FaultRule(method.upper(), re.compile(path_regex), status, times, retry_after, body, apply=apply)
        self._faults.append(rule)
        return rule

    def delay_route(self, method: str, path_regex: str, seconds: float, times: int | None = None) -> FaultRule:
        """Make matching requests take ``seconds`` longer (a slow Discord)."""
        rule = FaultRule(method.upper(), re.compile(path_regex), None, times, delay=seconds)
        self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        self._faults.clear()

    def rate_limit(self, method: str, path_regex: str, limit: int, per: float) -> RateLimit:
        r"""Enforce a rate limit like Discord's: answers carry X-RateLimit-* headers (so discord.py waits
        before it runs out), and a request over the limit gets a 429 with ``retry_after``. The first group of
        ``path_regex`` is the bucket's major parameter, e.g. ``rate_limit("POST", r"^/channels/(\d+)/messages$",
        5, 5.0)`` is 5 messages per 5 s per channel. ``rule.limited`` counts the 429s."""
        rule = RateLimit(method.upper(), re.compile(path_regex), int(limit), float(per),
                         bucket="rl" + secrets.token_hex(6))
        self._limits.append(rule)
        return rule

    def use_discord_rate_limits(self) -> list[RateLimit]:
        """The buckets a bot commonly meets (Discord does not publish exact numbers): 5 messages and 5 edits
        per 5 s per channel, 1 reaction per 0.25 s per channel, 5 requests per 2 s per webhook token."""
        return [
            self.rate_limit("POST", r"^/channels/(\d+)/messages$", 5, 5.0),
            self.rate_limit("PATCH", r"^/channels/(\d+)/messages/\d+$", 5, 5.0),
            self.rate_limit("DELETE", r"^/channels/(\d+)/messages/\d+$", 5, 5.0),
            self.rate_limit("PUT", r"^/channels/(\d+)/messages/\d+/reactions/", 1, 0.25),
            self.rate_limit("*", r"^/webhooks/\d+/([^/]+)", 5, 2.0),
        ]

    @property
    def invalid_requests(self) -> int:
        """Answers Discord counts toward its Cloudflare ban (10,000 per 10 minutes): 401, 403 and 429."""
        return sum(1 for r in self.requests if r.status in (401, 403, 429))

    # internals ------------------------------------------------------------------------------------------
    def _take_rate_limits(self, method: str, path: str) -> tuple[web.Response | None, dict]:
        headers: dict = {}
        now = self.clock.monotonic()
        for rule in self._limits:
            key = rule.match(method, path)
            if key is None:
                continue
            window = rule.windows.get(key)
            if window is None or now >= window[0]:
                window = rule.windows[key] = [now + rule.per, 0]
            reset_after = max(0.0, window[0] - now)
            if window[1] >= rule.limit:
                rule.limited += 1
                return self._rate_limited(reset_after, rule.limit, rule.bucket), {}
            window[1] += 1
            headers = self._rate_limit_headers(rule.limit, rule.limit - window[1], reset_after, rule.bucket)
        return None, headers

    def _rate_limit_headers(self, limit: int, remaining: int, reset_after: float, bucket: str) -> dict:
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{self.clock.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}", "X-RateLimit-Bucket": bucket}

    def _rate_limited(self, retry_after: float, limit: int, bucket: str, body: dict | None = None) -> web.Response:
        """Discord's 429: Retry-After (whole seconds), X-RateLimit-* headers and ``retry_after`` in the body."""
        ra = round(retry_after, 3)
        headers = {"Retry-After": str(max(1, math.ceil(ra))), **self._rate_limit_headers(limit, 0, ra, bucket),
                   "X-RateLimit-Scope": "user", "Via": "1.1 google"}
        body = body or {"message": "You are being rate limited.", "retry_after": ra, "global": False}
        return json_response(429, body, headers)

    def _fault_response(self, fault: FaultRule, status: int) -> web.Response:
        if status == 429:
            return self._rate_limited(float(fault.retry_after or 0.5), 5, "fake" + secrets.token_hex(8), fault.body)
        body = fault.body or {"message": f"{status}: injected by fake-discord", "code": 0}
        return json_response(status, body)

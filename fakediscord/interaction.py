"""One injected interaction as a test sees it, and how it fails when the bot does not answer."""
from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING

from fakediscord.model import INTERACTION_DEADLINE_S, INTERACTION_TOKEN_TTL_S, FakeMessage

if TYPE_CHECKING:
    from fakediscord.objects import FakeChannel, FakeMember, FakeUser, Host


class InteractionFailed(AssertionError):
    """The bot did not answer an interaction in time (Discord shows "This interaction failed")."""


class FakeInteraction:
    """One injected interaction. ``await it`` waits for the bot's first response (raises InteractionFailed).

    After that: ``response_type`` (4 message, 5 deferred, 6 deferred update, 7 update, 8 autocomplete,
    9 modal), ``response`` (the callback's ``data``), ``latency`` (seconds from dispatch to callback),
    ``ephemeral``, ``original`` (the response message, or for 6/7 the message holding the component) and
    ``followups``. ``await it.reply()`` waits until a deferred response has real content.
    """

    def __init__(self, fake: Host, itype: int, user: FakeUser, member: FakeMember | None,
                 channel: FakeChannel, data: dict, message: FakeMessage | None, upload_limit: int):
        self.fake = fake
        self.id = fake.ids.next()
        self.token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(24)
        self.type = itype
        self.user, self.member, self.channel, self.data = user, member, channel, data
        self.guild = member.guild if member else None
        self.message = message
        self.upload_limit = upload_limit
        self.created_at = fake.clock.time()
        self.sent_at = fake.clock.monotonic()
        self.expires_at = self.created_at + INTERACTION_TOKEN_TTL_S
        self.state = "pending"  # → "responded" | "failed"
        self.failure: str | None = None
        self.response_type: int | None = None
        self.response: dict | None = None
        self.latency: float | None = None
        self.original: FakeMessage | None = None
        self.followups: list[FakeMessage] = []
        self.command_hidden = False  # member lacks the command's default_member_permissions
        self._expiry_reported = False  # a deferred response left past the token's expiry was reported
        self._done: asyncio.Future = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        what = self.data.get("name") or self.data.get("custom_id")
        return f"<FakeInteraction {self.id} {what!r} by {self.user.name} {self.state} type={self.response_type}>"

    @property
    def ephemeral(self) -> bool:
        return bool(self.original is not None and self.original.ephemeral) if self.response_type in (4, 5) else False

    @property
    def content(self) -> str | None:
        """The visible text of the response: the original message, else the last followup."""
        msg = self.original if self.response_type in (4, 5) else (self.followups[-1] if self.followups else None)
        return None if msg is None else msg.content

    def __await__(self):
        return self.wait().__await__()

    async def wait(self, timeout: float | None = None) -> FakeInteraction:
        """Wait for the first response; raise InteractionFailed if Discord's 3 s deadline passed."""
        timeout = timeout if timeout is not None else INTERACTION_DEADLINE_S + 2
        try:
            await asyncio.wait_for(asyncio.shield(self._done), timeout)
        except asyncio.TimeoutError:
            raise InteractionFailed(f"{self!r}: no response within {timeout} s") from None
        if self.state == "failed":
            raise InteractionFailed(f"{self!r}: {self.failure}")
        return self

    async def reply(self, timeout: float = 30.0) -> FakeMessage:
        """The message the user sees: the original response once it is no longer "thinking", else a followup."""
        await self.wait()

        def ready(m: FakeMessage) -> bool:
            if m is self.original and self.response_type in (4, 5):
                return not m.loading
            return m in self.followups

        if self.original is not None and self.response_type in (4, 5) and not self.original.loading:
            return self.original
        if self.followups:
            return self.followups[0]
        return await self.fake.wait_for_message(ready, timeout)

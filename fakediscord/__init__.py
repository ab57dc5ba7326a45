"""A fake Discord on loopback for end-to-end tests and the playground.

It speaks the real protocol (REST v10, the gateway websocket), so an unmodified discord.py bot runs against
it: ``fake = await FakeDiscord().start()``, then point the bot at ``fake.api_base`` and ``fake.gateway_url``
with the token ``fake.bot_token``. It enforces Discord's rules (deadlines, limits, permissions), records
every request and broken rule, and lets a test act as users, inject faults and drop the gateway.

The guide to the test API, the rules enforced, and where each part lives is docs/fake-discord.md.
:class:`FakeDiscord` is one object assembled from mixins, one concern per module (world, actions,
messages, gateway, faults, rest, routes/…): tests use one flat API and the parts share one world, so
mixins keep every method where its concern is without a forwarding layer; the shared state is declared in
:class:`~fakediscord.state.DiscordState` and created in ``FakeDiscord.__init__``. The plain data they hold
(model, objects, records) lives in modules that import no part, so nothing imports in a circle.
"""
from fakediscord.fake import FakeDiscord, eventually
from fakediscord.interaction import FakeInteraction, InteractionFailed
from fakediscord.model import ApiError, Attachment, Clock, FakeMessage, OptionRejected
from fakediscord.objects import FakeChannel, FakeGuild, FakeMember, FakeRole, FakeUser
from fakediscord.records import FaultRule, GatewaySession, RateLimit, RecordedRequest, UploadedFile

__all__ = [
    "eventually", "ApiError", "Attachment", "Clock", "FakeChannel", "FakeDiscord", "FakeGuild", "FakeInteraction",
    "FakeMember",
    "FakeMessage", "FakeRole", "FakeUser", "FaultRule", "GatewaySession", "InteractionFailed", "OptionRejected",
    "RateLimit", "RecordedRequest", "UploadedFile",
]

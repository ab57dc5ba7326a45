"""A fake Discord on loopback for end-to-end tests and the playground.

It speaks the real protocol (REST v10 over aiohttp, the gateway websocket with JSON text frames), so an
unmodified discord.py bot runs against it once ``discord.http.Route.BASE`` and the gateway URL point here
(``bot.endpoints.use_discord_endpoints(fake.api_base, fake.gateway_url)`` or the DISCORD_API_BASE /
DISCORD_GATEWAY_URL environment variables, token ``fake.bot_token``).

Setting up::

    fake = await FakeDiscord().start()            # 127.0.0.1, random port; also `async with FakeDiscord()`
    guild = fake.add_guild("Test Server")         # @everyone (id = guild id), owner, bot member, #general
    alice = guild.add_member("alice")             # plain member
    mod = guild.add_member("mod", permissions=["manage_guild"])   # or admin=True, roles=[...]
    room = guild.add_channel("art"); room.overwrite(guild.everyone, deny="send_messages")
    fake.set_team([(fake.add_user("dev"), "developer", "accepted")])   # a team-owned application
    await fake.wait_until_ready()                 # a bot identified and synced its commands

Acting as users (each returns a FakeInteraction; ``await`` it for the first response)::

    it = fake.slash(alice, "morph", from_="dog", to="cat", frames=8)   # from_ → option "from"
    await it                 # raises InteractionFailed if not answered within 3 s
    it.latency, it.response_type, it.ephemeral, it.content, it.original, it.followups
    msg = await it.reply()   # the visible message once a deferred response is filled in
    fake.slash(mod, "morphadmin pause")                                # subcommands: words in the name
    fake.click(alice, msg, "morph:pick:1:3"); fake.select(alice, msg, "morph:frames:1", ["3"])
    fake.react(alice, msg, "3️⃣")  # MESSAGE_REACTION_ADD (awaitable, already done); unreact(); post()

``slash`` checks options as Discord's client does (required, types, choices, min/max) and raises
OptionRejected instead of sending; ``strict=False`` sends anything. ``in_channel=``, ``upload_limit=``
(the interaction's attachment_size_limit) and ``options={"raw name": v}`` are the other knobs.
``it.command_hidden`` says the member lacks the command's default_member_permissions (Discord would hide
the command unless a server admin overrode it; the fake still sends it, so the bot's own check is tested).

Looking at what happened::

    await fake.wait_for_message(lambda m: m.attachments, timeout=30)   # FakeMessage: created, edited or deleted
    fake.messages[channel_id]   # live messages, oldest first; ephemeral ones have m.ephemeral
    m.content, m.components, m.buttons(), m.selects(), m.custom_ids(), m.attachment("morph.gif").data,
    m.allowed_mentions, m.pings (who Discord would notify), m.reactions, m.history, m.edit_times
    fake.requests (RecordedRequest: method, path, query, json, files, status), fake.requests_to(m, rx)
    fake.unknown_routes   # [(method, path)] answered 404 — a test should assert it is empty
    fake.violations       # Discord rules the bot broke (late/duplicate acks, limits, expired tokens, …)
    fake.commands         # synced commands per scope (None = global), with default_member_permissions
    fake.interactions, fake.gateway_stats (connects, identifies, resumes, drops: totals of all sessions)

Rules enforced (violations are answered as Discord does *and* appended to ``fake.violations``):
3 s to the first interaction response (late → 10062 Unknown interaction, the interaction fails); one
acknowledgement (40060); interaction tokens live 15 minutes on ``fake.clock`` (``fake.clock.advance(900)``;
then 50027); uploads over the interaction's ``attachment_size_limit`` / the guild's limit → 413 (40005);
≤ 10 files; content ≤ 2,000 characters, no empty messages (50006); ≤ 5 action rows of ≤ 5 buttons or one
select of 1–25 options, unique custom_ids ≤ 100 characters; embed limits; allowed_mentions recorded and
checked; bot permissions per channel (50013/50001); only own messages editable (50005); command sync
validation (names, descriptions, ≤ 25 options, required before optional).

Faults: ``fake.fail_route("POST", r"^/channels/\\d+/messages$", 500, times=2)``; a 429 carries Discord's
headers and JSON ``retry_after`` (``retry_after=0.3``) so discord.py's own limiter retries;
``apply=True`` performs the request and then loses the answer; ``fake.delay_route(...)`` slows routes;
``await fake.drop_gateway()`` cuts the websocket (the client RESUMEs and missed events are replayed;
``mode="invalidate"`` forces a new IDENTIFY). Rate limits (opt-in):
``fake.rate_limit("POST", r"^/channels/(\\d+)/messages$", 5, 5.0)`` (first group = bucket key) sends
X-RateLimit-* headers and 429s over the limit; ``fake.use_discord_rate_limits()`` installs the usual
buckets; ``fake.invalid_requests`` counts 401/403/429 answers.

Shards (as on Discord: https://discord.com/developers/docs/events/gateway#sharding)::

    g = fake.add_guild("Big", shard=(1, 2))       # an id with (id >> 22) % 2 == 1
    fake.recommended_shards = 2                   # GET /gateway/bot "shards" (AutoShardedClient asks it)
    await fake.wait_until_ready(shard_count=2)    # every shard of that count connected; or sessions=N
    fake.sessions, fake.connected_shards          # GatewaySession: id, shard, connected, received(event)
    await fake.drop_gateway(shard=1)              # or session=…; default: every connection

A session that IDENTIFYs with ``shard: [id, count]`` gets READY with only its shard's guilds and then only
their events (GUILD_CREATE/DELETE, messages, reactions, members, INTERACTION_CREATE); DMs go to shard 0; an
invalid ``shard`` is closed with 4010. Every session of a shard gets each event: two processes on one
shard both receive every interaction (and only one may answer it). A session without ``shard`` gets
everything.

Events for the playground: ``q = fake.subscribe()`` (``fake.unsubscribe(q)``) yields dicts::

    {"type": "message_create" | "message_update", "channel_id": int, "message": {...Discord message JSON,
        "ephemeral": bool, "for_user_id": int | None, attachments with "url" served by the fake}}
    {"type": "message_delete", "channel_id": int, "message_id": int}
    {"type": "reaction_add" | "reaction_remove", "channel_id", "message_id", "user_id", "emoji"}
    {"type": "interaction_create", "interaction_id", "kind", "user_id", "channel_id", "data"}
    {"type": "interaction_response", "interaction_id", "response_type", "latency", "data", "user_id",
        "channel_id"}
    {"type": "interaction_failed", "interaction_id", "reason"}
    {"type": "violation", "rule", "method", "path", "status", "code", "message"}
    {"type": "commands_synced", "guild_id", "names"}
    {"type": "gateway", "state": "identified" | "resumed" | "dropped" | "disconnected", ...}

Attachment bytes: ``fake.attachment_bytes(id)`` or GET ``{fake.base_url}/attachments/{id}/{filename}``.
"""
from bot.sandbox.fake import (
    FakeChannel, FakeDiscord, FakeGuild, FakeInteraction, FakeMember, FakeRole, FakeUser, FaultRule,
    GatewaySession, InteractionFailed, OptionRejected, RateLimit, RecordedRequest, UploadedFile, eventually,
)
from bot.sandbox.model import ApiError, Attachment, Clock, FakeMessage

__all__ = [
    "eventually", "ApiError", "Attachment", "Clock", "FakeChannel", "FakeDiscord", "FakeGuild", "FakeInteraction", "FakeMember",
    "FakeMessage", "FakeRole", "FakeUser", "FaultRule", "GatewaySession", "InteractionFailed", "OptionRejected",
    "RateLimit", "RecordedRequest", "UploadedFile",
]

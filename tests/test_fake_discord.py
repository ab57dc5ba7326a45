"""The fake Discord speaks the protocol: a plain discord.py bot (no morph code) runs against it unmodified.

Each test starts the fake on a random loopback port, points discord.py's REST base and gateway at it, and
drives a small commands.Bot through slash commands, a DynamicItem button, a select, files and reactions,
then checks Discord's rules and fault injection.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import json

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from fakediscord import ApiError, FakeDiscord, InteractionFailed, OptionRejected, eventually

PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


class Pick(discord.ui.DynamicItem[discord.ui.Button], template=r"demo:pick:(?P<n>\d+)"):
    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label=str(n), custom_id=f"demo:pick:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        if self.n == 3:  # acknowledge without a message (callback type 6), then follow up
            await interaction.response.defer()
            await interaction.followup.send("picked 3 quietly", ephemeral=True)
            return
        await interaction.response.send_message(f"picked {self.n}", ephemeral=True)


class Choose(discord.ui.DynamicItem[discord.ui.Select], template=r"demo:choose"):
    def __init__(self) -> None:
        super().__init__(discord.ui.Select(custom_id="demo:choose",
                                           options=[discord.SelectOption(label=str(i), value=str(i))
                                                    for i in range(1, 6)]))

    @classmethod
    async def from_custom_id(cls, interaction, item, match):
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"chose {interaction.data['values'][0]}", ephemeral=True)


class DemoBot(commands.Bot):
    """A minimal bot written the way the morph bot is: tree commands, dynamic items, raw reactions."""

    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.1,
                         allowed_mentions=discord.AllowedMentions.none())
        self.reactions: list[discord.RawReactionActionEvent] = []
        self.errors: list[Exception] = []
        self.resumed = asyncio.Event()
        self.slow_started, self.answer_slow = asyncio.Event(), asyncio.Event()  # the "slow" command
        self.gateway_events: list[tuple[str, int]] = []
        tree = self.tree

        @tree.command(name="echo", description="Repeat text")
        async def echo(interaction: discord.Interaction, text: str, times: app_commands.Range[int, 1, 5] = 1):
            await interaction.response.send_message(" ".join([text] * times))

        @echo.autocomplete("text")
        async def echo_text(interaction: discord.Interaction, current: str):
            said = current * (interaction.namespace.times or 1)  # the options already filled in arrive too
            return [app_commands.Choice(name=said, value=said)]

        @tree.command(name="post", description="Post a file with buttons")
        async def post(interaction: discord.Interaction):
            await interaction.response.defer(thinking=True)
            view = discord.ui.View(timeout=None)
            for n in (1, 2, 3):
                view.add_item(Pick(n))
            view.add_item(Choose())
            msg = await interaction.channel.send("here", file=discord.File(io.BytesIO(PNG_BYTES), "dot.png"), view=view)
            await msg.add_reaction("3️⃣")
            await interaction.followup.send(f"posted {msg.id}")

        @tree.command(name="slow", description="Answers too late")
        async def slow(interaction: discord.Interaction):
            self.slow_started.set()
            with contextlib.suppress(asyncio.TimeoutError):  # 3.3 s, or until the test says
                await asyncio.wait_for(self.answer_slow.wait(), 3.3)
            try:
                await interaction.response.send_message("late")
            except discord.HTTPException as exc:
                self.errors.append(exc)

        @tree.command(name="long", description="Tries rule-breaking messages")
        async def long(interaction: discord.Interaction, what: str):
            try:
                if what == "content":
                    await interaction.response.send_message("x" * 2001)
                elif what == "file":
                    await interaction.response.send_message(file=discord.File(io.BytesIO(b"y" * 5000), "big.bin"))
                elif what == "twice":
                    await interaction.response.send_message("one")
                    await interaction.followup.send("followup ok")
                    await interaction.response.send_message("two")
            except (discord.HTTPException, discord.InteractionResponded) as exc:
                self.errors.append(exc)
                if not interaction.response.is_done():
                    await interaction.response.send_message(f"refused: {exc}", ephemeral=True)

        @tree.command(name="guarded", description="Manage Server only")
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.checks.has_permissions(manage_guild=True)
        async def guarded(interaction: discord.Interaction):
            await interaction.response.send_message("allowed", ephemeral=True)

        @guarded.error
        async def guarded_error(interaction: discord.Interaction, error):
            await interaction.response.send_message(f"refused: {type(error).__name__}", ephemeral=True)

        @tree.command(name="later", description="Defer then follow up after a while")
        async def later(interaction: discord.Interaction):
            await interaction.response.defer(ephemeral=True)
            self.later_interaction = interaction

    async def setup_hook(self) -> None:
        self.add_dynamic_items(Pick, Choose)
        await self.tree.sync()

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        if payload.user_id != self.user.id:
            self.reactions.append(payload)

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def on_raw_message_edit(self, payload) -> None:
        self.gateway_events.append(("edit", payload.message_id))

    async def on_raw_message_delete(self, payload) -> None:
        self.gateway_events.append(("delete", payload.message_id))

    async def on_message(self, message: discord.Message) -> None:
        self.gateway_events.append(("create", message.id))


@pytest.fixture
async def fake(monkeypatch):
    f = await FakeDiscord().start()
    monkeypatch.setattr(discord.http.Route, "BASE", f.api_base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(f.gateway_url))
    yield f
    await f.stop()


@pytest.fixture
async def world(fake):
    guild = fake.add_guild("Test Server")
    alice = guild.add_member("alice")
    admin = guild.add_member("root", admin=True)
    bot = DemoBot()
    task = asyncio.create_task(bot.start(fake.bot_token))
    await fake.wait_until_ready(timeout=10)
    await asyncio.wait_for(bot.wait_until_ready(), 10)
    yield fake, guild, alice, admin, bot
    await bot.close()
    await asyncio.wait_for(task, 10)
    assert fake.unknown_routes == []


async def test_login_sync_and_guild(world):
    fake, guild, alice, admin, bot = world
    assert bot.user.id == fake.bot_user.id
    g = bot.get_guild(guild.id)
    assert g is not None and g.default_role.id == guild.id
    assert {c.name for c in g.text_channels} == {"general"}
    names = {c["name"]: c for c in fake.commands[None]}
    assert set(names) == {"echo", "post", "slow", "long", "guarded", "later"}
    assert names["guarded"]["default_member_permissions"] == str(discord.Permissions(manage_guild=True).value)
    assert names["echo"]["default_member_permissions"] is None
    assert fake.gateway_stats["identifies"] == 1
    assert fake.requests_to("GET", r"^/users/@me$") and fake.requests_to("GET", r"^/oauth2/applications/@me$")


async def test_slash_reply_and_options(world):
    fake, guild, alice, admin, bot = world
    it = await fake.slash(alice, "echo", text="hi", times=3)
    assert it.response_type == 4 and it.content == "hi hi hi" and not it.ephemeral
    assert 0 <= it.latency < 3
    msg = it.original
    assert msg in fake.messages[guild.default_channel.id]
    assert msg.allowed_mentions == {"parse": []} and not msg.pings_anyone
    with pytest.raises(OptionRejected, match="max_value"):
        fake.slash(alice, "echo", text="hi", times=9)
    with pytest.raises(OptionRejected, match="required"):
        fake.slash(alice, "echo")
    with pytest.raises(OptionRejected, match="no option"):
        fake.slash(alice, "echo", text="hi", color="red")
    assert fake.violations == []


async def test_file_button_select_and_reactions(world):
    fake, guild, alice, admin, bot = world
    it = await fake.slash(alice, "post")
    assert it.response_type == 5
    reply = await it.reply()
    assert reply.content.startswith("posted ") and not reply.loading
    posted = fake.message(int(reply.content.split()[1]))
    assert posted.attachment("dot.png").data == PNG_BYTES
    assert posted.custom_ids() == ["demo:pick:1", "demo:pick:2", "demo:pick:3", "demo:choose"]
    assert posted.reactions == {"3️⃣": [fake.bot_user.id]}

    click = await fake.click(alice, posted, "demo:pick:2")
    assert click.response_type == 4 and click.ephemeral and click.content == "picked 2"
    quiet = await fake.click(alice, posted, "demo:pick:3")
    assert quiet.response_type == 6  # deferred update: the clicked message stays as it was
    followup = await fake.wait_for_message(lambda m: m.content == "picked 3 quietly")
    assert followup.ephemeral and quiet.followups == [followup]
    assert posted.content == "here" and len(posted.custom_ids()) == 4
    pending = fake.slash(alice, "slow")  # unanswered for 3.3 s: answer it by hand with type 6 meanwhile
    await eventually(lambda: pending.state == "pending" and pending.id, timeout=2)
    async with aiohttp.ClientSession() as http:  # type 6 answers components only, never a slash command
        async with http.post(f"{fake.api_base}/interactions/{pending.id}/{pending.token}/callback",
                             data=json.dumps({"type": 6}), headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400 and (await r.json())["code"] == 50035
    assert "callback type 6 not valid for interaction type 2" in fake.violations[-1]["rule"]
    fake.violations.clear()
    chose = await fake.select(alice, posted, "demo:choose", ["4"])
    assert chose.content == "chose 4"
    with pytest.raises(OptionRejected):
        fake.select(alice, posted, "demo:choose", ["9"])

    await fake.react(alice, posted, "3️⃣")
    await eventually(lambda: bot.reactions, timeout=2)
    assert [(r.user_id, str(r.emoji), r.message_id) for r in bot.reactions] == [(alice.id, "3️⃣", posted.id)]
    assert posted.reactions["3️⃣"] == [fake.bot_user.id, alice.id]

    # The bot can read the attachment back from the fake's CDN URL.
    channel = bot.get_channel(guild.default_channel.id)
    fetched = await channel.fetch_message(posted.id)
    assert await fetched.attachments[0].read() == PNG_BYTES
    assert fake.violations == []


async def test_late_answer_fails_the_interaction(world):
    fake, guild, alice, admin, bot = world
    it = fake.slash(alice, "slow")
    await asyncio.wait_for(bot.slow_started.wait(), 10)
    fake.clock.advance(3.1)  # Discord's 3 s pass (the fake's deadline follows its clock)
    with pytest.raises(InteractionFailed, match="3 s"):
        await it
    bot.answer_slow.set()  # the answer comes now, too late
    await eventually(lambda: bot.errors)
    assert isinstance(bot.errors[0], discord.NotFound) and bot.errors[0].code == 10062
    assert it.state == "failed" and any("deadline" in v["rule"] or "no response" in v["rule"] for v in fake.violations)


async def test_message_rules(world):
    fake, guild, alice, admin, bot = world
    it = await fake.slash(alice, "long", what="content")
    assert it.ephemeral and "2000 or fewer" in it.content
    assert bot.errors[-1].status == 400 and bot.errors[-1].code == 50035

    it = await fake.slash(alice, "long", what="file", upload_limit=4096)
    assert bot.errors[-1].status == 413 and "refused" in it.content

    it = await fake.slash(alice, "long", what="twice")
    followup = await fake.wait_for_message(lambda m: m.content == "followup ok")
    assert it.content == "one" and it.followups == [followup]
    # discord.py refuses a second response
    await eventually(lambda: isinstance(bot.errors[-1], discord.InteractionResponded), timeout=2)
    assert isinstance(bot.errors[-1], discord.InteractionResponded)
    async with aiohttp.ClientSession() as http:  # … and Discord refuses it too
        async with http.post(f"{fake.api_base}/interactions/{it.id}/{it.token}/callback",
                             data=json.dumps({"type": 4, "data": {"content": "two"}}),
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400 and (await r.json())["code"] == 40060
    rules = [v["rule"] for v in fake.violations]
    assert any("content longer than 2000" in r for r in rules)
    assert any("over the 4096-byte limit" in r for r in rules)

    # Components: 6 rows and 26 options are refused with Discord's error body (raw REST, bot token).
    headers = {"Authorization": f"Bot {fake.bot_token}", "Content-Type": "application/json"}
    url = f"{fake.api_base}/channels/{guild.default_channel.id}/messages"
    rows = [{"type": 1, "components": [{"type": 2, "style": 1, "label": "x", "custom_id": f"b{i}"}]} for i in range(6)]
    select = [{"type": 1, "components": [{"type": 3, "custom_id": "s", "options": [
        {"label": str(i), "value": str(i)} for i in range(26)]}]}]
    six = [{"type": 1, "components": [{"type": 2, "style": 1, "label": "x", "custom_id": f"c{i}"} for i in range(6)]}]
    async with aiohttp.ClientSession() as http:
        for comps, rule in ((rows, "action rows"), (select, "26 options"), (six, "components in a row")):
            async with http.post(url, data=json.dumps({"content": "c", "components": comps}), headers=headers) as r:
                assert r.status == 400 and r.headers["Content-Type"] == "application/json"
                assert (await r.json())["code"] == 50035
            assert rule in fake.violations[-1]["rule"]
        async with http.post(url, data=json.dumps({"content": ""}), headers=headers) as r:
            assert (await r.json())["code"] == 50006
        async with http.get(f"{fake.api_base}/nope/route", headers=headers) as r:
            assert r.status == 404
    assert fake.unknown_routes == [("GET", "/nope/route")]
    fake.unknown_routes.clear()


async def test_mentions_are_recorded(world):
    fake, guild, alice, admin, bot = world
    channel = bot.get_channel(guild.default_channel.id)
    quiet = await channel.send(f"hi <@{alice.id}> @everyone")  # bot default: AllowedMentions.none()
    loud = await channel.send(f"hi <@{alice.id}>", allowed_mentions=discord.AllowedMentions(users=True))
    assert not fake.message(quiet.id).pings_anyone
    assert fake.message(loud.id).pings["users"] == [alice.id]


async def test_permissions_are_computed(world):
    fake, guild, alice, admin, bot = world
    refused = await fake.slash(alice, "guarded")
    assert refused.command_hidden and refused.content == "refused: MissingPermissions"
    allowed = await fake.slash(admin, "guarded")
    assert not allowed.command_hidden and allowed.content == "allowed"
    manager = guild.add_member("manager", permissions=["manage_guild"])
    assert (await fake.slash(manager, "guarded")).content == "allowed"


async def test_faults_429_and_500_are_retried_by_discord_py(world):
    fake, guild, alice, admin, bot = world
    boom = fake.fail_route("POST", r"^/channels/\d+/messages$", 500, times=1)  # discord.py waits 1 s
    rate = fake.fail_route("POST", r"^/channels/\d+/messages$", 429, times=2, retry_after=0.1)
    channel = bot.get_channel(guild.default_channel.id)
    msg = await channel.send("survived", file=discord.File(io.BytesIO(PNG_BYTES), "dot.png"))
    assert rate.hits == 2 and boom.hits == 1
    statuses = [r.status for r in fake.requests_to("POST", r"^/channels/\d+/messages$")]
    assert statuses == [500, 429, 429, 200]
    assert [m.content for m in fake.messages[channel.id]] == ["survived"]
    assert fake.message(msg.id).attachment("dot.png").data == PNG_BYTES


@pytest.mark.slow
async def test_gateway_drop_resumes_and_replays(world):
    fake, guild, alice, admin, bot = world
    assert await fake.drop_gateway() == 1
    it = fake.slash(alice, "echo", text="while away")  # sent while the bot is disconnected
    await asyncio.wait_for(bot.resumed.wait(), 5)
    await it
    assert it.content == "while away"
    assert fake.gateway_stats["resumes"] == 1 and fake.gateway_stats["identifies"] == 1

    await fake.drop_gateway(mode="invalidate")
    await eventually(lambda: fake.gateway_stats["identifies"] == 2 and fake.connected, timeout=10)
    assert fake.gateway_stats["identifies"] == 2
    assert (await fake.slash(alice, "echo", text="again")).content == "again"


async def test_token_expires_after_15_minutes(world):
    fake, guild, alice, admin, bot = world
    it = await fake.slash(alice, "later")
    assert it.response_type == 5 and it.original.loading and it.ephemeral
    await bot.later_interaction.followup.send("in time")
    assert (await it.reply()).content == "in time" and not it.original.loading

    it2 = await fake.slash(alice, "later")
    fake.clock.advance(15 * 60 + 1)
    with pytest.raises(discord.HTTPException) as err:
        await bot.later_interaction.edit_original_response(content="too late")
    assert err.value.status == 401 and err.value.code == 50027
    assert any("15-minute" in v["rule"] for v in fake.violations)
    assert it2.original.loading


async def test_subscribe_sees_messages_and_responses(world):
    fake, guild, alice, admin, bot = world
    q = fake.subscribe()
    await fake.slash(alice, "echo", text="evt")
    events = []
    while not q.empty():
        events.append(q.get_nowait())
    kinds = [e["type"] for e in events]
    assert kinds[0] == "interaction_create"
    assert "interaction_response" in kinds and "message_create" in kinds
    created = next(e for e in events if e["type"] == "message_create")
    assert created["message"]["content"] == "evt" and created["channel_id"] == guild.default_channel.id
    json.dumps(events)  # JSON-serialisable for the browser
    fake.unsubscribe(q)


async def test_rest_details(world):
    """Edits of own/other messages, history paging, nonce dedupe, lost responses, reactions, DMs."""
    fake, guild, alice, admin, bot = world
    it = await fake.slash(alice, "echo", text="mine")
    user_msg = fake.post(alice, guild.default_channel, "hello from alice")
    headers = {"Authorization": f"Bot {fake.bot_token}", "Content-Type": "application/json"}
    base = f"{fake.api_base}/channels/{guild.default_channel.id}/messages"
    async with aiohttp.ClientSession() as http:
        async def call(method, url, body=None):
            async with http.request(method, url, data=None if body is None else json.dumps(body),
                                    headers=headers) as r:
                return r.status, (await r.json() if r.status != 204 else None)

        # the bot may edit its own (non-ephemeral) interaction response with its token, not others' messages
        assert (await call("PATCH", f"{base}/{it.original.id}", {"content": "edited"}))[0] == 200
        assert it.original.content == "edited" and it.original.edited_at is not None
        status, body = await call("PATCH", f"{base}/{user_msg.id}", {"content": "hacked"})
        assert (status, body["code"]) == (403, 50005) and user_msg.content == "hello from alice"
        # deleting someone else's message needs Manage Messages
        assert (await call("DELETE", f"{base}/{user_msg.id}"))[1]["code"] == 50013

        # enforce_nonce: the same nonce returns the first message instead of a duplicate
        first = (await call("POST", base, {"content": "once", "nonce": "job-7", "enforce_nonce": True}))[1]
        again = (await call("POST", base, {"content": "once", "nonce": "job-7", "enforce_nonce": True}))[1]
        assert first["id"] == again["id"]

        # history: newest first, limit and before
        ids = [m["id"] for m in (await call("GET", f"{base}?limit=2"))[1]]
        assert ids == [first["id"], str(user_msg.id)]
        older = (await call("GET", f"{base}?limit=10&before={user_msg.id}"))[1]
        assert [m["content"] for m in older] == ["edited"]

        # a lost response: the message exists although the client got a 500
        lost = fake.fail_route("POST", r"^/channels/\d+/messages$", 502, apply=True)
        async with http.post(base, data=json.dumps({"content": "ghost"}), headers=headers) as r:
            assert r.status == 502
        assert lost.hits == 1 and fake.messages[guild.default_channel.id][-1].content == "ghost"

        # reactions: not an emoji → 10014; the bot's own reaction is recorded once
        status, body = await call("PUT", f"{base}/{first['id']}/reactions/abc/@me")
        assert body["code"] == 10014
        for _ in range(2):
            assert (await call("PUT", f"{base}/{first['id']}/reactions/%E2%AD%90/@me"))[0] == 204
        assert fake.message(int(first["id"])).reactions == {"⭐": [fake.bot_user.id]}

        # DMs and unknown objects
        dm = (await call("POST", f"{fake.api_base}/users/@me/channels", {"recipient_id": str(alice.id)}))[1]
        assert dm["type"] == 1 and (await call("POST", f"{fake.api_base}/channels/{dm['id']}/messages",
                                               {"content": "psst"}))[0] == 200
        assert (await call("GET", f"{fake.api_base}/channels/123"))[1]["code"] == 10003
        async with http.get(f"{fake.api_base}/users/@me") as r:  # no token
            assert r.status == 401
    assert {v["code"] for v in fake.violations} == {50005, 50013, 10014, 10003, 0}


async def test_rate_limit_headers_make_discord_py_wait(world):
    fake, guild, alice, admin, bot = world
    rule = fake.rate_limit("POST", r"^/channels/(\d+)/messages$", 3, 0.5)
    channel = bot.get_channel(guild.default_channel.id)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(7):
        await channel.send(f"m{i}")
    took = loop.time() - t0
    assert [m.content for m in fake.messages[channel.id]] == [f"m{i}" for i in range(7)]
    assert took >= 1.0  # three windows of 0.5 s: discord.py read the headers and waited
    assert rule.limited == 0 and fake.invalid_requests == 0
    # concurrent sends without waiting for headers can overrun the bucket: Discord answers 429
    await asyncio.gather(*(channel.send(f"c{i}") for i in range(6)))
    assert len(fake.messages[channel.id]) == 13 and fake.invalid_requests == rule.limited


async def test_rate_limit_answers_429_past_the_limit(fake):
    """Raw requests past a bucket's limit get Discord's 429 (discord.py itself waits before it gets there)."""
    guild = fake.add_guild("Test Server")
    other = guild.add_channel("other")
    rule = fake.rate_limit("POST", r"^/channels/(\d+)/messages$", 2, 60.0)
    headers = {"Authorization": f"Bot {fake.bot_token}", "Content-Type": "application/json"}
    url = f"{fake.api_base}/channels/{guild.default_channel.id}/messages"
    async with aiohttp.ClientSession() as http:
        async def post(url):
            async with http.post(url, data=json.dumps({"content": "hi"}), headers=headers) as r:
                return r.status, r.headers, await r.json()

        for remaining in ("1", "0"):
            status, h, _ = await post(url)
            assert status == 200 and h["X-RateLimit-Remaining"] == remaining and h["X-RateLimit-Bucket"] == rule.bucket
        status, h, body = await post(url)
        assert status == 429 and body["message"] == "You are being rate limited." and body["global"] is False
        assert 59 < body["retry_after"] <= 60 and float(h["X-RateLimit-Reset-After"]) == body["retry_after"]
        assert h["Retry-After"] == "60" and h["X-RateLimit-Limit"] == "2" and h["X-RateLimit-Remaining"] == "0"
        assert h["X-RateLimit-Bucket"] == rule.bucket and h["X-RateLimit-Scope"] == "user"
        assert rule.limited == 1 and fake.invalid_requests == 1
        assert len(fake.messages[guild.default_channel.id]) == 2
        # another channel is another bucket; once the window has passed the first channel may post again
        assert (await post(f"{fake.api_base}/channels/{other.id}/messages"))[0] == 200
        fake.clock.advance(60)
        assert (await post(url))[0] == 200
    assert rule.limited == 1 and len(fake.messages[guild.default_channel.id]) == 3
    assert fake.unknown_routes == []


async def test_autocomplete_checks_like_slash(world):
    fake, guild, alice, admin, bot = world
    it = await fake.autocomplete(alice, "echo", "text", "ab", times=2)
    assert it.response_type == 8 and [c["value"] for c in it.response["choices"]] == ["abab"]
    assert it.data["options"] == [{"type": 4, "name": "times", "value": 2},
                                  {"type": 3, "name": "text", "value": "ab", "focused": True}]
    with pytest.raises(OptionRejected, match="no subcommand"):
        fake.autocomplete(alice, "echo loud", "text")
    with pytest.raises(OptionRejected, match="no option"):
        fake.autocomplete(alice, "echo", "text", "ab", color="red")
    with pytest.raises(OptionRejected, match="does not autocomplete"):
        fake.autocomplete(alice, "echo", "times")


async def test_wait_for_message_sees_deleted_messages_on_both_paths(world):
    fake, guild, alice, admin, bot = world
    channel = bot.get_channel(guild.default_channel.id)
    gone = await channel.send("bye")
    await gone.delete()
    found = await fake.wait_for_message(lambda m: m.content == "bye", timeout=1)  # already there
    assert found.id == gone.id and found.deleted
    waiting = asyncio.create_task(fake.wait_for_message(lambda m: m.content == "later" and m.deleted,
                                                        timeout=5, existing=False))
    later = await channel.send("later")
    await later.delete()
    assert (await waiting).id == later.id


async def test_message_events_come_back_over_the_gateway(world):
    """As on Discord, the bot receives MESSAGE_CREATE/UPDATE/DELETE for what it does itself."""
    fake, guild, alice, admin, bot = world
    channel = bot.get_channel(guild.default_channel.id)
    msg = await channel.send("one")
    await msg.edit(content="two")
    await msg.delete()
    eph = await fake.slash(alice, "guarded")  # an ephemeral reply: bots get no event for it
    await eventually(lambda: len(bot.gateway_events) >= 3, timeout=2)
    await asyncio.sleep(0.1)
    assert bot.gateway_events == [("create", msg.id), ("edit", msg.id), ("delete", msg.id)]
    assert eph.ephemeral and fake.message(msg.id).history[-1]["content"] == "two" and fake.message(msg.id).deleted


def _command(**localized) -> dict:
    """A CHAT_INPUT command payload as discord.py syncs it, with translations ``localized`` of its name and
    description (``name_localizations={...}``, ``description_localizations={...}``)."""
    return {"type": 1, "name": "pic", "description": "Morph a picture", "options": [
        {"type": 11, "name": "first", "description": "The first picture", "required": True}], **localized}


def test_command_translations_are_held_to_discords_rules():
    from fakediscord.rules import validate_commands

    validate_commands([_command(name_localizations={"ja": "画像"}, description_localizations={"ja": "画像をモーフ"})])
    with pytest.raises(ApiError, match="Invalid Form Body") as upper:
        validate_commands([_command(name_localizations={"ja": "Pic"})])
    assert upper.value.rule == "invalid localized name 'Pic' (ja)"
    with pytest.raises(ApiError) as unknown:
        validate_commands([_command(description_localizations={"xx": "a picture"})])
    assert unknown.value.rule == "description_localizations: 'xx' is not a Discord locale"
    with pytest.raises(ApiError) as long:
        validate_commands([_command(description_localizations={"ja": "あ" * 101})])
    assert long.value.status == 400 and long.value.rule.endswith("(ja) must be 1–100 characters")
    assert long.value.errors == {"0": {"description_localizations": {"ja": {"_errors": [
        {"code": "BASE_TYPE_BAD_LENGTH", "message": f"Invalid localization ({'あ' * 101!r})"}]}}}}


async def test_an_attachment_option_takes_an_uploaded_file_only(fake):
    alice = fake.add_guild("Pictures").add_member("alice")
    fake.commands[None] = [_command()]
    with pytest.raises(OptionRejected, match=r"/pic first='cat.png': must be an uploaded file"):
        fake.slash(alice, "pic", first="cat.png")

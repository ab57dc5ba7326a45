"""The fake Discord shards as Discord does.

A session IDENTIFYs with ``shard: [id, count]`` and then gets only the events of the guilds on its shard
(``(guild_id >> 22) % count == id``), DMs only on shard 0; every session of a shard gets each event, so two
sessions on one shard both receive an interaction (how duplicates happen in production). A session
without ``shard`` gets everything. Checked with a bare websocket client (exact frames) and with
discord.py's own AutoShardedBot.
"""
from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest
import yarl
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from fakediscord import FakeDiscord, eventually

ALL_INTENTS = (1 << 17) - 1  # every intent, privileged ones included: routing is what is tested here


class RawGateway:
    """A bare gateway client: IDENTIFY (with ``shard`` when given), then record every dispatch."""

    def __init__(self, fake: FakeDiscord, shard: list | None = None) -> None:
        self.fake, self.shard = fake, shard
        self.dispatches: list[tuple[str, dict]] = []
        self.ready: dict | None = None
        self.seq = 0  # of the last dispatch received
        self.close_code: int | None = None

    async def connect(self) -> RawGateway:
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(self.fake.gateway_url)
        hello = await self.ws.receive_json()
        assert hello["op"] == 10
        identify = {"token": self.fake.bot_token, "intents": ALL_INTENTS, "properties": {}}
        if self.shard is not None:
            identify["shard"] = self.shard
        await self.ws.send_json({"op": 2, "d": identify})
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                frame = msg.json()
                if frame["op"] == 0:
                    self.seq = frame["s"]
                    self.dispatches.append((frame["t"], frame["d"]))
                    if frame["t"] == "READY":
                        self.ready = frame["d"]
        self.close_code = self.ws.close_code

    def caught_up(self) -> bool:
        """Every dispatch the fake has sent to this client's session so far has arrived (for "and nothing
        else" checks: no fixed wait that a slow machine could outlast)."""
        sid = self.ready and self.ready["session_id"]
        return any(s.id == sid and s.seq == self.seq for s in self.fake.sessions)

    def got(self, event: str) -> list[dict]:
        return [d for t, d in self.dispatches if t == event]

    def guild_ids(self, event: str) -> list[int]:
        return [int(d.get("guild_id") or d.get("id")) for d in self.got(event)]

    async def close(self) -> None:
        await self.ws.close()
        await self._reader
        await self.http.close()


@pytest.fixture
async def fake():
    f = await FakeDiscord().start()
    yield f
    await f.stop()


async def connect_all(fake, *shards) -> list[RawGateway]:
    clients = [await RawGateway(fake, shard).connect() for shard in shards]
    await fake.wait_until_ready(sessions=len(clients), commands=False, timeout=5)
    await eventually(lambda: all(c.ready for c in clients), timeout=5)
    return clients


async def sync_commands(fake) -> None:
    """Register one global command through the REST API, as a bot does."""
    url = f"{fake.api_base}/applications/{fake.application_id}/commands"
    async with aiohttp.ClientSession() as http:
        async with http.put(url, json=[{"name": "ping", "description": "Ping", "type": 1}],
                            headers={"Authorization": f"Bot {fake.bot_token}"}) as r:
            assert r.status == 200


async def test_add_guild_lands_on_the_chosen_shard(fake):
    before = fake.ids.next()
    for count in (1, 2, 3, 16):
        for shard_id in range(count):
            guild = fake.add_guild(f"g{shard_id}of{count}", shard=(shard_id, count))
            assert (guild.id >> 22) % count == shard_id
    ids = sorted(fake.guilds)
    assert ids == list(fake.guilds) and ids[0] > before  # still snowflakes in creation order
    assert fake.ids.next() > ids[-1]
    for bad in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="shard"):
            fake.add_guild("bad", shard=bad)


async def test_ready_and_guild_events_reach_only_the_guilds_shard(fake):
    g0 = fake.add_guild("zero", shard=(0, 2))
    g1 = fake.add_guild("one", shard=(1, 2))
    s0, s1, everything = await connect_all(fake, [0, 2], [1, 2], None)

    assert [int(g["id"]) for g in s0.ready["guilds"]] == [g0.id] and s0.ready["shard"] == [0, 2]
    assert [int(g["id"]) for g in s1.ready["guilds"]] == [g1.id] and s1.ready["shard"] == [1, 2]
    assert sorted(int(g["id"]) for g in everything.ready["guilds"]) == sorted([g0.id, g1.id])
    assert "shard" not in everything.ready
    assert s0.guild_ids("GUILD_CREATE") == [g0.id] and s1.guild_ids("GUILD_CREATE") == [g1.id]

    late = fake.add_guild("late", shard=(1, 2))              # joins after everyone identified
    alice = g0.add_member("alice")                          # GUILD_MEMBER_ADD in guild 0
    fake.post(alice, g0.default_channel, "hello")           # MESSAGE_CREATE in guild 0
    bob = g1.add_member("bob")
    msg = fake.post(bob, g1.default_channel, "hi")
    fake.react(bob, msg, "⭐")                               # MESSAGE_REACTION_ADD in guild 1
    fake.post(alice.user, fake.dm_channel(alice.user), "a DM")  # DMs are on shard 0
    fake.remove_guild(g0)                                   # GUILD_DELETE of guild 0
    assert await eventually(lambda: all(c.caught_up() for c in (s0, s1, everything)), timeout=5)

    assert s0.guild_ids("GUILD_CREATE") == [g0.id] and s1.guild_ids("GUILD_CREATE") == [g1.id, late.id]
    assert s0.guild_ids("GUILD_MEMBER_ADD") == [g0.id] and s1.guild_ids("GUILD_MEMBER_ADD") == [g1.id]
    assert [d["content"] for d in s0.got("MESSAGE_CREATE")] == ["hello", "a DM"]
    assert [d["content"] for d in s1.got("MESSAGE_CREATE")] == ["hi"]
    assert s0.got("MESSAGE_REACTION_ADD") == [] and s1.guild_ids("MESSAGE_REACTION_ADD") == [g1.id]
    assert s0.guild_ids("GUILD_DELETE") == [g0.id] and s1.got("GUILD_DELETE") == []
    assert len(everything.got("MESSAGE_CREATE")) == 3 and len(everything.got("GUILD_CREATE")) == 3
    for client in (s0, s1, everything):
        await client.close()


async def test_an_interaction_reaches_every_session_of_its_shard(fake):
    """Two sessions on shard 1 both get the interaction (Discord does the same); shard 0 does not."""
    g1 = fake.add_guild("one", shard=(1, 2))
    alice = g1.add_member("alice")
    s0, s1a, s1b = await connect_all(fake, [0, 2], [1, 2], [1, 2])
    await sync_commands(fake)

    it = fake.slash(alice, "ping")
    dm = fake.slash(alice.user, "ping")  # in a DM: shard 0
    assert await eventually(lambda: all(c.caught_up() for c in (s0, s1a, s1b)), timeout=5)
    assert [int(d["id"]) for d in s1a.got("INTERACTION_CREATE")] == [it.id]
    assert [int(d["id"]) for d in s1b.got("INTERACTION_CREATE")] == [it.id]
    assert [int(d["id"]) for d in s0.got("INTERACTION_CREATE")] == [dm.id]
    assert {s.shard for s in fake.sessions} == {(0, 2), (1, 2)} and len(fake.sessions) == 3
    for client in (s0, s1a, s1b):
        await client.close()


async def test_invalid_shard_is_refused_with_4010(fake):
    for shard in ([2, 2], [0, 0], [-1, 2], "0,2", [0]):
        client = await RawGateway(fake, shard).connect()
        await eventually(lambda c=client: c.close_code is not None, timeout=5)
        assert client.close_code == 4010, shard
        await client.close()
    assert [v["code"] for v in fake.violations] == [4010] * 5
    assert fake.sessions == []


async def test_wait_until_ready_for_every_shard_and_drop_one_session(fake):
    fake.add_guild("zero", shard=(0, 2))
    s0 = await RawGateway(fake, [0, 2]).connect()
    with pytest.raises(TimeoutError, match="shard"):
        await fake.wait_until_ready(shard_count=2, commands=False, timeout=0.3)
    s1 = await RawGateway(fake, [1, 2]).connect()
    await fake.wait_until_ready(shard_count=2, commands=False, timeout=5)
    assert fake.connected_shards == {(0, 2), (1, 2)}

    assert await fake.drop_gateway(shard=1) == 1
    await eventually(lambda: s1.close_code is not None, timeout=5)
    assert s1.close_code == 4000 and s0.close_code is None
    assert fake.connected_shards == {(0, 2)} and fake.gateway_stats["drops"] == 1
    session0 = next(s for s in fake.sessions if s.shard == (0, 2))
    assert await fake.drop_gateway(session=session0) == 1
    await eventually(lambda: s0.close_code is not None, timeout=5)
    assert fake.connected_shards == set() and not fake.connected
    await s0.close()
    await s1.close()


class ShardedDemo(commands.AutoShardedBot):
    """discord.py's own sharded bot: one /where command saying which shard answered."""

    def __init__(self, **options) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.1,
                         **options)

        @self.tree.command(name="where", description="Which shard am I on?")
        async def where(interaction: discord.Interaction):
            await interaction.response.send_message(f"shard {interaction.guild.shard_id}")

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def before_identify_hook(self, shard_id, *, initial=False) -> None:
        pass  # Discord wants 5 s between IDENTIFYs; the fake does not


async def test_discord_py_autosharded_bot_asks_gateway_bot_for_the_shard_count(fake, monkeypatch):
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.api_base}")
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL("ws://127.0.0.1:9/nowhere"))
    fake.recommended_shards = 3
    guilds = [fake.add_guild(f"g{i}", shard=(i, 3)) for i in range(3)]
    members = [g.add_member(f"user{i}") for i, g in enumerate(guilds)]
    bot = ShardedDemo()
    task = asyncio.create_task(bot.start(fake.bot_token))
    try:
        # /gateway/bot names the fake's gateway, so the default gateway (nowhere) is never used
        await fake.wait_until_ready(shard_count=3, timeout=10)
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        assert bot.shard_count == 3 and sorted(bot.shards) == [0, 1, 2]
        assert {g.id: g.shard_id for g in bot.guilds} == {g.id: i for i, g in enumerate(guilds)}
        for i, member in enumerate(members):
            assert (await fake.slash(member, "where")).content == f"shard {i}"
        assert fake.requests_to("GET", r"^/gateway/bot$")
    finally:
        await bot.close()
        await asyncio.wait_for(task, 10)
    assert fake.violations == [] and fake.unknown_routes == []

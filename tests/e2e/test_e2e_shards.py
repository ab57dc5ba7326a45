"""Two sharded fronts: shard 0 and shard 1 of 2, each a MorphBot with its own SQLite file and data folder.

Discord (here the fake) sends a guild's events only to the sessions of its shard, so each /morph is heard,
queued, rendered and delivered by exactly the front running that guild's shard, and a guild the bot joins
later reaches only that front. (Sharing one queue between fronts is the PostgreSQL work of issue #11.)
"""
from __future__ import annotations

import asyncio

import pytest
from e2e_helpers import gif_frames, job_id_of, result_messages

from bot.bot import ShardedMorphBot, bot_permissions, make_bot
from bot.jobs import STATES
from fakediscord import eventually


class Front:
    """One front process's bot, run in this event loop."""

    def __init__(self, fake, tmp, morpher, shard_id: int, shard_count: int = 2):
        from bot.config import Settings

        self.settings = Settings(
            discord_token=fake.bot_token, db_path=tmp / f"front{shard_id}" / "morph.sqlite3",
            data_dir=tmp / f"front{shard_id}" / "artifacts", model="tiny", device="cpu", default_frames=6,
            default_steps=2, cooldown_s=0.0, api_base=fake.api_base, gateway_url=fake.gateway_url,
            worker_id=f"front{shard_id}", shard_count=shard_count, shard_ids=(shard_id,))
        self.bot = make_bot(self.settings, morpher_factory=lambda: morpher, guild_ready_timeout=0.1)
        self.task = asyncio.create_task(self.bot.start(fake.bot_token))

    async def jobs(self, guild_id: int):
        return await self.bot.store.list_jobs(guild_id, states=STATES)

    async def stop(self):
        await self.bot.close()
        await asyncio.wait_for(self.task, 20)


async def test_each_front_answers_and_delivers_only_its_shards_guilds(fake, tmp_path, tiny_morpher):
    guilds = [fake.add_guild(f"Shard {i} Club", shard=(i, 2)) for i in range(2)]
    for g in guilds:
        g.bot_role.permissions = bot_permissions().value
    users = [g.add_member(f"user{i}") for i, g in enumerate(guilds)]
    fronts = [Front(fake, tmp_path, tiny_morpher, i) for i in range(2)]
    try:
        await fake.wait_until_ready(shard_count=2, timeout=20)
        for front in fronts:
            await asyncio.wait_for(front.bot.wait_until_ready(), 20)
        assert all(isinstance(f.bot, ShardedMorphBot) for f in fronts)
        assert [[g.id for g in f.bot.guilds] for f in fronts] == [[guilds[0].id], [guilds[1].id]]
        assert fake.connected_shards == {(0, 2), (1, 2)} and len(fake.sessions) == 2

        asked = [await fake.slash(users[i], "morph", from_=f"dog {i}", to=f"cat {i}", frames=4) for i in range(2)]
        for i, it in enumerate(asked):
            assert it.response_type == 4 and f"**dog {i}** → **cat {i}**" in it.content
            job_id = job_id_of(it.content)
            result = await fake.wait_for_message(
                lambda m, i=i: m.channel_id == guilds[i].default_channel.id and m.attachments, timeout=90)
            assert len(gif_frames(result.attachment(f"morph-{job_id}.gif").data)) == 4

            own, other = fronts[i], fronts[1 - i]
            job = await own.bot.store.get(job_id)
            assert job.guild_id == guilds[i].id and job.request.prompts[0] == f"dog {i}"
            await eventually(lambda own=own, job_id=job_id: _state(own, job_id, "delivered"), timeout=30)
            assert (await own.bot.store.get(job_id)).result_message_id == result.id
            assert await other.jobs(guilds[i].id) == []  # the other front never heard of it
            # both databases number their jobs from 1: the channel tells the two results apart
            here = [m for m in result_messages(fake, job_id) if m.guild_id == guilds[i].id]
            assert here == [result] and result.channel_id == guilds[i].default_channel.id

        assert len([m for m in fake.all_messages() if any(a.filename.endswith(".gif") for a in m.attachments)]) == 2
        # each shard's session got only its own guild's interaction
        by_shard = {s.shard: [int(d["id"]) for d in s.received("INTERACTION_CREATE")] for s in fake.sessions}
        assert by_shard == {(0, 2): [asked[0].id], (1, 2): [asked[1].id]}

        # a guild the bot joins now: its GUILD_CREATE reaches only the front of its shard
        late = fake.add_guild("Late Club", shard=(1, 2))
        await eventually(lambda: fronts[1].bot.get_guild(late.id), timeout=10)
        # the fake sends an event to every session of its shard at once: shard 0's was never sent it
        sent = {s.shard: [int(g["id"]) for g in s.received("GUILD_CREATE")] for s in fake.sessions}
        assert late.id in sent[(1, 2)] and late.id not in sent[(0, 2)]
        assert fronts[0].bot.get_guild(late.id) is None
        assert [f.bot.owns_guild(late.id) for f in fronts] == [False, True]
        assert [f.bot.owns_guild(g.id) for f in fronts for g in guilds] == [True, False, False, True]
    finally:
        for front in fronts:
            await front.stop()
    assert fake.violations == []


async def _state(front: Front, job_id: int, state: str) -> bool:
    job = await front.bot.store.get(job_id)
    return job is not None and job.state == state


@pytest.mark.slow
async def test_morph_bot_process_runs_the_shards_its_settings_name(fake, tmp_path):
    """``python -m bot`` with DISCORD_SHARD_COUNT=3 DISCORD_SHARD_IDS=2 identifies as shard 2 of 3 only and
    hears only that shard's guilds."""
    from e2e_helpers import BotProcess

    mine = fake.add_guild("Shard 2", shard=(2, 3))
    fake.add_guild("Shard 0", shard=(0, 3))
    alice = mine.add_member("alice")
    proc = await BotProcess(fake, tmp_path, DISCORD_SHARD_COUNT=3, DISCORD_SHARD_IDS=2).start()
    try:
        await fake.wait_until_ready(timeout=60)
        assert [s.shard for s in fake.sessions] == [(2, 3)]
        assert [int(g["id"]) for g in fake.sessions[0].received("GUILD_CREATE")] == [mine.id]
        it = await fake.slash(alice, "morph", from_="dog", to="cat", frames=4)
        assert job_id_of(it.content) == 1
    finally:
        assert await proc.interrupt() == 0, proc.log_tail()
    assert "running Discord shards 2 of 3" in proc.log_path.read_text()
    assert fake.violations == []

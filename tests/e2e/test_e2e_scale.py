"""Scale-out, every part its own OS process: the fake Discord (here) with 2 shards, 2 Discord fronts
(``morph-bot --no-worker``, one shard each), 2 render workers (``morph-worker``), one PostgreSQL database.

40 ``/morph`` from users of 4 guilds spread over both shards; one worker is killed (SIGKILL) mid-render and
one front mid-delivery, and both are started again. Every job is delivered exactly once, in its own channel,
by the front of its shard, with its status message edited to the end; no job is rendered by two workers;
Discord's rules are never broken. And two fronts on the *same* shard (both receive every interaction) make
one job of one /morph and one reply of one pick.
"""
from __future__ import annotations

import asyncio
import re
import time

import pytest
from e2e_helpers import job_id_of, result_messages

from bot.sharding import shard_of
from fakediscord import eventually
from testkit.process import BotProcess

pytestmark = pytest.mark.slow  # six processes, each loading torch
RESULT_POST = r"^/channels/\d+/messages$"


async def jobs_by_state(store, ids) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for job_id in ids:
        out.setdefault((await store.get(job_id)).state, []).append(job_id)
    return out


async def test_two_fronts_two_workers_postgres_kill_and_restart(fake, postgres, tmp_path):
    from bot.config import Settings
    from bot.store import Store

    url = postgres.create_database()
    fake.recommended_shards = 2
    guilds = [fake.add_guild(f"Club {i}", shard=(i % 2, 2)) for i in range(4)]
    members = {g.id: [g.add_member(f"user{n}") for n in range(10)] for g in guilds}
    common = dict(MORPH_DB=url, MORPH_MAX_USER_ACTIVE=10, MORPH_MAX_GUILD_QUEUE=40, MORPH_DEFAULT_STEPS=3,
                  MORPH_DEFAULT_FRAMES=6, DISCORD_SHARD_COUNT=2)

    def front(shard: int) -> BotProcess:
        return BotProcess(fake, tmp_path, MORPH_WORKER=0, DISCORD_SHARD_IDS=shard, MORPH_WORKER_ID=f"front{shard}",
                          **common)

    def worker(n: int) -> BotProcess:
        return BotProcess(fake, tmp_path, module="bot.worker_main", MORPH_WORKER_ID=f"gpu{n}", **common)

    fronts = [await front(0).start(), await front(1).start()]
    await fake.wait_until_ready(sessions=2, shard_count=2, timeout=60)
    workers = [await worker(0).spawn(), await worker(1).spawn()]
    store = await Store.open(url, Settings(db_path=url))
    killed_worker = None
    try:
        # the first /morph of each guild is long, so the workers are busy when the worker is killed
        sent = []
        for n in range(10):
            for g in guilds:
                frames = 60 if n == 0 else 6
                sent.append(await fake.slash(members[g.id][n], "morph", from_=f"a dog {n}", to="a cat",
                                             frames=frames))
        ids = [job_id_of((await it.reply()).content) for it in sent]
        assert len(set(ids)) == 40 and all(not it.ephemeral for it in sent)
        guild_of = {job_id: it.guild.id for job_id, it in zip(ids, sent, strict=True)}

        # kill -9 a worker while it renders
        async def gpu0_rendering():
            return [j for j in await store.running("gpu0") if j.progress]
        victim = (await eventually(gpu0_rendering, timeout=120, interval=0.1))[0]
        await workers[0].kill()
        killed_worker = workers[0]

        # kill -9 a front while it posts a result: the post reaches the fake, its answer never comes back
        slow = fake.delay_route("POST", RESULT_POST, 3.0, times=1)
        assert await eventually(lambda: slow.hits, timeout=120, interval=0.05), "no result post started"
        posting = fake.requests_to("POST", RESULT_POST)[-1]
        channel = fake.channels[int(re.search(r"/channels/(\d+)/", posting.path).group(1))]
        owner = shard_of(channel.guild.id, 2)  # fronts[i] runs shard i
        await fronts[owner].kill()

        # start both again
        workers[0] = await worker(0).spawn()
        fronts[owner] = await front(owner).start()

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            states = await jobs_by_state(store, ids)
            if states.get("delivered", []) and len(states["delivered"]) == 40:
                break
            assert not states.get("failed") and not states.get("cancelled"), states
            await asyncio.sleep(0.5)
        states = await jobs_by_state(store, ids)
        assert len(states.get("delivered", [])) == 40, {k: len(v) for k, v in states.items()}

        for job_id in ids:
            job = await store.get(job_id)
            posted = result_messages(fake, job_id)
            assert len(posted) == 1, (job_id, len(posted))  # exactly once
            assert posted[0].guild_id == guild_of[job_id] and posted[0].channel_id == job.channel_id
            assert posted[0].id == job.result_message_id
            status = fake.message(job.status_message_id)
            await fake.wait_for_message(lambda m, status=status: m is status and "done" in m.content, timeout=30)
            assert f"/{posted[0].id}" in status.content and status.components == []
            texts = [snap["content"] for snap in status.history] + [status.content]
            done_at = next(i for i, t in enumerate(texts) if "is done" in t)
            assert all(t == texts[done_at] for t in texts[done_at:]), texts  # nothing overwrote "done"
        # the worker killed mid-render: its job was taken over once and rendered by the other (or its restart)
        recovered = await store.get(victim.id)
        assert recovered.attempts == 1 and recovered.state == "delivered"
        # the long jobs showed their render progress on their status messages
        long_status = [fake.message((await store.get(j)).status_message_id) for j in ids[:4]]
        assert any("%" in snap["content"] for status in long_status for snap in status.history)
        # no job rendered by two workers: every "rendered" line names a different job
        rendered = re.findall(r"job #(\d+) rendered in", "".join(w.log_text() for w in [*workers, killed_worker]))
        assert sorted(map(int, rendered)) == sorted(ids), rendered
        assert fake.violations == [] and fake.unknown_routes == []
    finally:
        await store.close()
        for p in [*workers, *fronts]:
            await p.interrupt()


async def test_two_fronts_on_one_shard_make_one_job_and_one_pick(fake, postgres, tmp_path):
    """Both sessions receive every interaction (as on Discord): the first front to record it answers."""
    from bot.config import Settings
    from bot.store import Store

    url = postgres.create_database()
    guild = fake.add_guild("Twins")
    alice, bob, carol = guild.add_member("alice"), guild.add_member("bob"), guild.add_member("carol")
    env = dict(MORPH_DB=url, MORPH_DEFAULT_STEPS=2, MORPH_DEFAULT_FRAMES=4)
    a = await BotProcess(fake, tmp_path, MORPH_WORKER_ID="a", **env).start()
    b = await BotProcess(fake, tmp_path, MORPH_WORKER_ID="b", **env).start()
    await fake.wait_until_ready(sessions=2, timeout=60)
    store = await Store.open(url, Settings(db_path=url))
    try:
        it = await fake.slash(alice, "morph", from_="a dog", to="a cat")
        job_id = job_id_of((await it.reply()).content)
        result = await eventually(lambda: next(iter(result_messages(fake, job_id)), None), timeout=120)
        await eventually(lambda: len(result.reactions) >= 2, timeout=30)
        click = await fake.click(bob, result, result.custom_ids()[0])
        assert click.original.attachments
        await fake.react(carol, result, "2️⃣")
        await eventually(lambda: len([m for m in fake.all_messages() if m.interaction_id is None
                                      and m.message_reference and m.attachments]) >= 1, timeout=30)
        # The other front has handled carol's reaction too (the last event both got) and stayed silent: its
        # log says the pick was refused (too soon after the one just recorded) or a repeat. Checked after that,
        # not after a fixed wait that a slow machine could outlast.
        silent = f"reaction pick of {carol.id} on job {job_id} "
        assert await eventually(lambda: any(silent in p.log_text() for p in (a, b)), timeout=30), \
            a.log_tail() + b.log_tail()
        assert await store.db.fetchval("SELECT COUNT(*) FROM jobs") == 1
        assert [(p["user_id"], p["source"]) for p in await store.picks(job_id)] == [(bob.id, "button"),
                                                                                     (carol.id, "reaction")]
        replies = [m for m in fake.all_messages() if m.message_reference and m.attachments]
        assert len(replies) == 1  # the reaction's reply, once (the click was answered as the interaction)
        assert len(result_messages(fake, job_id)) == 1
        assert fake.violations == []  # nothing answered twice
    finally:
        await store.close()
        for p in (a, b):
            await p.interrupt()

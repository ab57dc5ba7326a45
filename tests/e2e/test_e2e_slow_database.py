"""A database that stops answering in the middle of an interaction, after the interaction was recorded: every
command and component is still answered within Discord's 3 s, privately, "unavailable for a moment", and
nothing it would have changed is changed; once the database answers again the same actions work.

The real discord.py client against the fake Discord, on a real SQLite file whose write lock another connection
takes just after the interaction is recorded (another process writing), and on a real PostgreSQL server
(``own_postgres``) where another session holds a lock on the row the action writes.
"""
from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from e2e_helpers import assert_unavailable, job_id_of

pytestmark = pytest.mark.slow

#: How long the other connection holds its lock at most: past Discord's 3 s, within the databases' own
#: lock waits (SQLite's busy timeout, PostgreSQL's lock_timeout: 10 s).
HOLD_S = 5.0


class SqliteWriter:
    """Another connection to the bot's SQLite file that takes the write lock (``BEGIN IMMEDIATE``) right after
    the bot recorded the next interaction, and holds it until :meth:`release` (or :data:`HOLD_S`)."""

    def __init__(self, store, path) -> None:
        self.path = path
        self.armed = False
        self._release = threading.Event()
        self._holder: asyncio.Task | None = None
        claim = store.claim_interaction

        async def claim_then_lock(interaction_id, now=None):
            first = await claim(interaction_id, now)
            if self.armed:
                self.armed = False
                await self._lock()
            return first

        store.claim_interaction = claim_then_lock  # the instance's: the real claim runs, then the lock is taken

    async def _lock(self) -> None:
        locked = threading.Event()
        self._release.clear()

        def hold():
            conn = sqlite3.connect(self.path, timeout=10)
            try:
                conn.execute("BEGIN IMMEDIATE")
                locked.set()
                self._release.wait(HOLD_S)
                conn.rollback()
            finally:
                conn.close()

        self._holder = asyncio.ensure_future(asyncio.to_thread(hold))
        await asyncio.to_thread(locked.wait, HOLD_S)

    async def during(self, action):
        """Run ``action()`` (sends an interaction and waits for its answer) with the lock taken after its claim."""
        self.armed = True
        try:
            return await action()
        finally:
            self.armed = False
            self._release.set()
            if self._holder is not None:
                await self._holder
                self._holder = None


async def test_sqlite_locked_after_the_claim_every_command_and_click_answers_in_time(harness):
    fake, h = harness.fake, harness
    await h.start_bot()
    alice, admin = h.guild.add_member("alice"), h.guild.add_member("root", admin=True)
    assert "paused" in (await fake.slash(admin, "morphadmin pause")).content.lower()  # nothing renders meanwhile
    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)
    job_id = job_id_of(it.content)
    cancel = it.original.custom_ids()[0]
    writer = SqliteWriter(h.store, h.tmp / "morph.sqlite3")

    assert_unavailable(await writer.during(lambda: fake.slash(alice, "morph-cancel", job=job_id)))
    assert_unavailable(await writer.during(lambda: fake.click(alice, it.original, cancel)))
    assert_unavailable(await writer.during(lambda: fake.slash(admin, "morphadmin resume")))
    assert_unavailable(await writer.during(lambda: fake.slash(admin, "morphadmin ban", user=alice)))
    await h.settled()
    # nothing they would have changed has changed
    assert (await h.store.get(job_id)).state == "queued"
    assert await h.store.is_paused(h.guild.id)
    assert await h.store.db.fetch("SELECT user_id FROM bans") == []

    # the same actions work once the lock is gone
    resumed = await fake.slash(admin, "morphadmin resume")
    assert not await h.store.is_paused(h.guild.id), resumed.content
    cancelled = await fake.click(alice, it.original, cancel)
    assert cancelled.latency < 3.0
    assert (await h.wait_state(job_id, ("cancelled", "running", "rendered", "delivered"))).state == "cancelled"
    assert fake.violations == []


async def test_postgres_row_locked_after_the_claim_every_command_and_click_answers_in_time(harness, own_postgres):
    import asyncpg

    fake, h = harness.fake, harness
    url = own_postgres.create_database()
    await h.start_bot(db_path=url)
    alice, admin = h.guild.add_member("alice"), h.guild.add_member("root", admin=True)
    await fake.slash(admin, "morphadmin pause")
    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)
    job_id = job_id_of(it.content)
    cancel = it.original.custom_ids()[0]
    other = await asyncpg.connect(url)  # another process's session
    try:
        async def while_locked(sql, *args, action):
            tx = other.transaction()
            await tx.start()
            try:
                await other.execute(sql, *args)
                return await action()
            finally:
                await tx.rollback()

        lock_job = "SELECT id FROM jobs WHERE id = $1 FOR UPDATE"
        lock_guild = "SELECT guild_id FROM guild_settings WHERE guild_id = $1 FOR UPDATE"
        assert_unavailable(await while_locked(lock_job, job_id,
                                              action=lambda: fake.slash(alice, "morph-cancel", job=job_id)))
        assert_unavailable(await while_locked(lock_job, job_id, action=lambda: fake.click(alice, it.original, cancel)))
        assert_unavailable(await while_locked(lock_guild, h.guild.id,
                                              action=lambda: fake.slash(admin, "morphadmin resume")))
    finally:
        await other.close()
    await h.settled()
    assert (await h.store.get(job_id)).state == "queued"
    assert await h.store.is_paused(h.guild.id)

    await fake.slash(admin, "morphadmin resume")
    assert not await h.store.is_paused(h.guild.id)
    cancelled = await fake.click(alice, it.original, cancel)
    assert cancelled.latency < 3.0
    assert (await h.wait_state(job_id, ("cancelled", "running", "rendered", "delivered"))).state == "cancelled"
    assert fake.violations == []

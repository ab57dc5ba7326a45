"""``bot.delivery``: the retry policy, and queue-position refreshes that slow down when many status edits
need the bot token (against a real SQLite Store; the HTTP call of the status editor is recorded instead)."""
from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest

from bot.delivery import POSITION_EDIT_SPACING_S, Delivery, backoff_s, is_retryable
from bot.status_editor import StatusEditor

GUILD, MEMBER = 111, 902


def test_backoff_grows_and_caps():
    delays = [backoff_s(n, jitter=0) for n in range(1, 12)]
    assert delays[:4] == [2, 4, 8, 16]
    assert max(delays) == 600 and delays == sorted(delays)
    assert 1.5 <= backoff_s(1) <= 2.5


class _Resp:
    def __init__(self, status):
        self.status, self.reason = status, "x"


@pytest.mark.parametrize("status,retry", [(500, True), (502, True), (429, True), (400, False), (403, False),
                                          (404, False)])
def test_retryable_statuses(status, retry):
    cls = {403: discord.Forbidden, 404: discord.NotFound}.get(status, discord.HTTPException)
    assert is_retryable(cls(_Resp(status), "boom")) is retry


def test_connection_errors_are_retryable():
    assert is_retryable(aiohttp.ClientConnectionError("reset"))
    assert is_retryable(asyncio.TimeoutError())
    assert not is_retryable(ValueError("bug"))


class _Clock:
    def __init__(self):
        self.t = 1_000_000.0

    def __call__(self):
        return self.t


class _RecordingEditor(StatusEditor):
    """The real StatusEditor (throttling, merging) with the HTTP call replaced by a record of it."""

    def __init__(self, clock):
        super().__init__(None, interval=0.01, clock=clock)
        self.applied = []

    async def _apply(self, target, fields):
        self.applied.append((target.message_id, target.webhook_usable(self.clock()), fields["content"]))


async def test_position_refreshes_slow_down_when_many_need_the_bot_token(tmp_path):
    """After the 15-minute interaction expiry every status edit shares the channel's edit rate limit:
    the more queued jobs a channel has, the longer until positions are refreshed again."""
    from bot.config import Settings
    from bot.store import Store
    from morph.request import RenderRequest

    clock = _Clock()
    settings = Settings(db_path=tmp_path / "m.sqlite3", data_dir=tmp_path / "art", cooldown_s=0,
                        max_user_active=50, max_guild_queue=50)
    store = await Store.open(settings.db_path, settings, clock=clock)
    try:
        delivery = Delivery(None, store, settings)
        delivery.editor = _RecordingEditor(clock)
        jobs = []
        for i in range(8):
            job = await store.enqueue(guild_id=GUILD, channel_id=5, user_id=MEMBER,
                                      request=RenderRequest(["a", f"b{i}"]), upload_limit=10 * 2**20,
                                      interaction_token=f"tok{i}", application_id=77)
            await store.set_status_message(job.id, 1000 + job.id)
            jobs.append(job)

        assert await delivery.refresh_positions() == 8  # tokens alive: each edit has its own bucket
        assert delivery.positions_pause == delivery.editor.interval
        await delivery.editor.drain()
        assert sorted(a[0] for a in delivery.editor.applied) == [1000 + j.id for j in jobs]
        assert all(usable for _, usable, _ in delivery.editor.applied)
        assert "Position **1** " in delivery.editor.applied[0][2]  # the front of the queue first

        clock.t += 16 * 60  # every token died
        delivery.editor.applied.clear()
        await store.cancel(jobs[0].id, actor_id=MEMBER)  # everyone moves up one place
        assert await delivery.refresh_positions() == 7
        assert delivery.positions_pause == 7 * POSITION_EDIT_SPACING_S
        await delivery.editor.drain()
        assert len(delivery.editor.applied) == 7 and not any(usable for _, usable, _ in delivery.editor.applied)
        assert await delivery.refresh_positions() == 0  # nothing changed: no edit, short pause
        assert delivery.positions_pause == delivery.editor.interval
    finally:
        await store.close()

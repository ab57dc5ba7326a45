"""Fixtures for the end-to-end tests (helpers live in e2e_helpers.py)."""
from __future__ import annotations

import pytest
from e2e_helpers import Harness

from fakediscord import FakeDiscord


@pytest.fixture
async def fake():
    from bot.endpoints import use_discord_endpoints

    f = await FakeDiscord().start()
    use_discord_endpoints(f.api_base, f.gateway_url)
    try:
        yield f
        # every end-to-end test: the bot used only routes Discord has (the fake answers others with 404)
        assert f.unknown_routes == [], f.unknown_routes
    finally:
        use_discord_endpoints(None, None)
        await f.stop()


@pytest.fixture
async def harness(fake, tmp_path, tiny_morpher):
    h = Harness(fake, tmp_path, tiny_morpher)
    yield h
    await h.stop_bot(drop_pending_edits=True)
    assert fake.unknown_routes == [], fake.unknown_routes

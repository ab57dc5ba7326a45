"""Fixtures of the playground tests: one running Playground for the whole folder (FakeDiscord + the
unmodified MorphBot + the web server on a free port, with the tiny model and 2 denoising steps), and a client
of its HTTP API. Its event loop is the folder's too (``loop_scope="package"``): every test that uses it
says so. Helpers that read the API: playground_helpers.py."""
from __future__ import annotations

import aiohttp
import pytest_asyncio


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def pg(tiny_morpher, tmp_path_factory):
    from bot.config import Settings
    from bot.playground import Playground
    from bot.playground.app import model_banner

    settings = Settings(model="tiny", cooldown_s=0, pick_cooldown_s=0, default_frames=8, default_steps=2,
                        max_user_active=3)
    playground = Playground(settings, host="127.0.0.1", port=0, morpher_factory=lambda: tiny_morpher,
                            banner=model_banner("tiny"), model="tiny", data_dir=tmp_path_factory.mktemp("pg"))
    await playground.start()
    try:
        yield playground
        # nothing the bot or the page did hit a route the fake Discord does not know
        assert playground.fake.unknown_routes == [], playground.fake.unknown_routes
    finally:
        await playground.stop()


@pytest_asyncio.fixture(loop_scope="package")
async def http(pg):
    """A client of the API as the page is: with the per-run token the page carries."""
    async with aiohttp.ClientSession(base_url=pg.url, headers={"X-Playground-Token": pg.server.token}) as session:
        yield session

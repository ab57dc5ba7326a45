"""``bot.cogs.morph``: the /morph command as the bot syncs it (the commands themselves run in ``tests/e2e``)."""
from __future__ import annotations

import discord
from discord.ext import commands

from bot.actions import Actions
from bot.cogs.morph import MorphCog
from bot.config import Settings
from bot.delivery import Delivery
from bot.store import Store
from morph.request import MAX_FRAMES, MIN_FRAMES


async def test_frames_option_carries_this_bots_max_frames(tmp_path):
    """``set_frames_bound`` writes a private table of discord.py: this fails if an upgrade breaks it."""
    settings = Settings(db_path=tmp_path / "m.sqlite3", data_dir=tmp_path / "art", max_frames=37, default_frames=12)
    store = await Store.open(settings.db_path, settings)
    try:
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
        cog = MorphCog(bot, Actions(store, settings, Delivery(bot, store, settings)), store)
        frames = cog.morph.get_parameter("frames")
        assert frames is not None and (frames.min_value, frames.max_value) == (MIN_FRAMES, 37)
        synced = {option["name"]: option for option in cog.morph.to_dict(bot.tree)["options"]}
        assert synced["frames"]["max_value"] == 37
        assert synced["frames"]["description"] == "How many frames, 2–37 (default 12)"
        # the class's command, which every other bot's cog copies, keeps the engine's bound
        assert MorphCog.morph.get_parameter("frames").max_value == MAX_FRAMES
    finally:
        await store.close()

"""The floor of ``bench.ack``: a discord.py bot that answers ``/morph`` at once and does nothing else (no
database, no model). What remains of its answer time is the fake Discord's, discord.py's and the machine's.

Run by ``bench.ack`` as ``python -m bench.null_bot`` with the same DISCORD_* environment as the bot.
"""
from __future__ import annotations

import os

import discord
from discord import app_commands

from bot.endpoints import use_discord_endpoints


class NullBot(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default())
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="morph", description="Answer at once")
        @app_commands.rename(from_="from")
        async def morph(interaction: discord.Interaction, from_: str, to: str, frames: int | None = None) -> None:
            await interaction.response.send_message(f"🕓 Morph job #1 queued: {from_} → {to}",
                                                    allowed_mentions=discord.AllowedMentions.none())

    async def setup_hook(self) -> None:
        await self.tree.sync()


if __name__ == "__main__":
    use_discord_endpoints(os.environ["DISCORD_API_BASE"], os.environ["DISCORD_GATEWAY_URL"])
    NullBot().run(os.environ["DISCORD_TOKEN"], log_handler=None)

"""Point discord.py at a Discord-compatible server other than discord.com (the fake, a proxy).

discord.py builds every REST URL from the class attribute ``discord.http.Route.BASE`` (webhooks and
interaction callbacks use the same ``Route``) and opens the gateway at
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` when a plain client connects, and so does an
AutoShardedClient given a ``shard_count`` (the bot always gives one when sharded; without one, discord.py
would connect to the ``url`` of GET /gateway/bot, which the fake answers with its own). After READY it
resumes at the ``resume_gateway_url`` the server sent, so the server must send its own URL there.
Nothing else in the bot knows which server it talks to.
"""
from __future__ import annotations

import discord.gateway
import discord.http
import yarl

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY = yarl.URL("wss://gateway.discord.gg/")


def use_discord_endpoints(api_base: str | None, gateway_url: str | None) -> None:
    """Send REST calls to ``api_base`` and connect the gateway to ``gateway_url``.

    ``None`` (or an empty string) restores the real Discord endpoint for that half. ``api_base`` is the
    full prefix including the API version, e.g. ``http://127.0.0.1:8765/api/v10``.
    """
    discord.http.Route.BASE = (api_base or DISCORD_API_BASE).rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url) if gateway_url else DISCORD_GATEWAY


def current_endpoints() -> tuple[str, str]:
    """The REST base and gateway URL discord.py will use now (for logs)."""
    return discord.http.Route.BASE, str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)

"""``bot.endpoints``: pointing discord.py at another Discord (the fake) and back."""
from __future__ import annotations


def test_endpoints_switch_and_restore():
    import discord.gateway
    import discord.http

    from bot.endpoints import use_discord_endpoints

    try:
        use_discord_endpoints("http://127.0.0.1:9/api/v10/", "ws://127.0.0.1:9/gw")
        assert discord.http.Route("GET", "/users/@me").url == "http://127.0.0.1:9/api/v10/users/@me"
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/gw"
    finally:
        use_discord_endpoints(None, None)
    assert discord.http.Route("GET", "/users/@me").url == "https://discord.com/api/v10/users/@me"
    assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "wss://gateway.discord.gg/"

"""``bot.bot``: the invite link asks for exactly the scopes and permissions the bot needs."""
from __future__ import annotations

import urllib.parse

from bot.bot import SCOPES, bot_permissions, invite_url


def test_invite_url_has_exact_scopes_and_minimal_permissions():
    url = invite_url(1234567890)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert query["client_id"] == ["1234567890"]
    assert query["scope"] == ["bot applications.commands"]
    expected = 1024 + 2048 + 16384 + 32768 + 64 + 65536  # view, send, embed, attach, react, history
    assert query["permissions"] == [str(expected)] == [str(bot_permissions().value)]
    perms = bot_permissions()
    assert not (perms.administrator or perms.manage_messages or perms.mention_everyone or perms.manage_guild)
    assert SCOPES == ("bot", "applications.commands")

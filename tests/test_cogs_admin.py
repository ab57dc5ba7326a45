"""``bot.cogs.admin``: what /morphadmin parses and shows (the commands themselves run in ``tests/e2e``)."""
from __future__ import annotations

import re

import pytest

GUILD, ADMIN = 111, 901
MENTION = re.compile(r"<(@[!&]?|#)\d+>|@(everyone|here)")


def _mentions_except(text: str, allowed: set[str]) -> list[str]:
    return [m.group(0) for m in MENTION.finditer(text) if m.group(0) not in allowed]


def test_parse_channel_ids():
    from bot.cogs.admin import parse_channel_ids
    from morph.request import MorphError

    assert parse_channel_ids("<#12>, 34 <#56>") == [12, 34, 56]
    with pytest.raises(MorphError, match="not a channel"):
        parse_channel_ids("<#12> general")


def test_admin_texts_quote_user_text_safely():
    from bot.cogs.admin import format_audit, format_limits
    from bot.store import Limits

    audit = format_audit([{"guild_id": GUILD, "actor_id": ADMIN, "action": "limits",
                           "facts": {"text": "banned_words=@everyone <@&5>"}, "created_at": 0},
                          {"guild_id": GUILD, "actor_id": ADMIN, "action": "limits",
                           "facts": {"changes": {"default_format": "@everyone <@&5>"}}, "created_at": 0}])
    assert _mentions_except(audit, {f"<@{ADMIN}>"}) == []
    limits = format_limits(Limits(max_user_active=2, max_guild_queue=20, cooldown_s=30.0, max_frames=60,
                                  banned_words=("@here", "cat"), allowed_channels=(77,), paused=True,
                                  default_format="gif"))
    assert "cooldown: 30 s" in limits and "<#77>" in limits and "paused: yes" in limits
    assert _mentions_except(limits, {"<#77>"}) == []

"""Migration 0013 keeps the audit lines older versions wrote, as ``{"text": …}`` facts shown as written, on both
backends, so the audit log reads one form (facts) only."""

from migration_helpers import open_before

from bot.cogs.admin import format_audit
from bot.config import Settings
from bot.store import Store


async def test_0013_keeps_old_audit_lines_as_text(db_url, tmp_path):
    database = await open_before(db_url, tmp_path, 13)
    try:
        for action, detail in (("pause", ""), ("clear", "2 queued morphs cancelled"),
                               ("ban", "<@7> (1 queued cancelled)")):
            await database.execute("INSERT INTO audit_log (guild_id, actor_id, action, detail, created_at) "
                                   "VALUES (1, 9, $1, $2, 10)", action, detail)
    finally:
        await database.close()
    store = await Store.open(db_url, Settings())
    try:
        await store.clear(1, 9)  # a new entry: facts
        entries = await store.audit_log(1)
    finally:
        await store.close()
    assert [(e["action"], e["facts"]) for e in entries] == [
        ("clear", {"count": 0}), ("ban", {"text": "<@7> (1 queued cancelled)"}),
        ("clear", {"text": "2 queued morphs cancelled"}), ("pause", {})]
    lines = format_audit(entries, "ja").splitlines()
    assert lines[1].endswith("<@9> 全取り消し: 待機中のモーフ 0 件を取り消し")
    assert lines[3].endswith("<@9> 全取り消し: 2 queued morphs cancelled") and lines[4].endswith("<@9> 一時停止")

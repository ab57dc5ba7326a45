"""Languages end to end, beyond the slash commands (``test_e2e_languages.py``): what a member whose Discord is in
Japanese reads when they press a button or choose in a menu of a result or a status message (every private
answer in Japanese, whatever the server's language), what those components post in a server whose language is
Japanese, and every ``/morphadmin`` subcommand for an admin whose Discord is in Japanese (its private answers, the
audit log it shows, and the public posts it causes). Each check compares the Japanese text itself, and
``assert_no_english`` runs over every text collected."""
from __future__ import annotations

import asyncio
import re
import sqlite3

import pytest
from e2e_helpers import is_japanese, job_id_of, texts_of
from test_e2e_safety import PARTLY, start, toy_checker, toy_harness, toy_morpher  # noqa: F401 - fixtures

from fakediscord import FakeDiscord, FakeMember, eventually
from testkit.languages import assert_no_english

#: what Discord's client calls the commands in Japanese (the catalogue's translations of their names)
ADMIN_CMD, CANCEL_CMD = "/モーフ管理", "/モーフ取り消し"


def private_texts(fake: FakeDiscord, member: FakeMember) -> list[str]:
    """Every private (ephemeral) answer ``member`` got, each version of each, follow-ups too."""
    return [t for m in fake.all_messages(include_deleted=True) if m.ephemeral and m.interaction_user_id == member.id
            for t in texts_of(m)]


def public_texts(fake: FakeDiscord, guild_id: int) -> list[str]:
    """Everything the bot posted for everyone in a guild (deleted messages too: members read them before)."""
    return [t for m in fake.all_messages(include_deleted=True) if m.guild_id == guild_id and not m.ephemeral
            and m.author.get("bot") for t in texts_of(m)]


def latin_words(line: str) -> list[str]:
    """The words of the Latin alphabet left in ``line`` once mentions, prompts (``**a dog**``) and ``UTC`` are
    taken out: in a Japanese line, English that is not in the catalogue (which ``assert_no_english`` cannot see)."""
    return re.findall(r"[A-Za-z]{2,}", re.sub(r"<[@#]!?\d+>|\*\*[^*]*\*\*|\bUTC\b", "", line))


def audit_lines(text: str) -> list[str]:
    """The audit log's entries at the end of ``/morphadmin list`` or ``stats`` (Japanese: after 監査ログ)."""
    return text.split("監査ログ（新しい順）:\n", 1)[1].splitlines()


def assert_japanese(texts: list[str]) -> None:
    """Every text reads Japanese (or has no word of three Latin letters, e.g. ``🖼️ 1``)."""
    odd = [t for t in texts if not is_japanese(t) and re.search("[A-Za-z]{3}", t)]
    assert not odd, odd


def japanese_guild(fake: FakeDiscord):
    """A server whose language is Japanese (Discord's preferred locale), the bot with what its invite asks for."""
    from bot.bot import bot_permissions

    guild = fake.add_guild("モーフ部", preferred_locale="ja")
    guild.bot_role.permissions = bot_permissions().value
    return guild


def pick_ids(message) -> list[str]:
    return [c for c in message.custom_ids() if ":pick:" in c]


async def lock_database(path) -> sqlite3.Connection:
    """Another connection takes the write lock of the bot's SQLite file (another process writing)."""
    def lock() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        return conn

    return await asyncio.to_thread(lock)


@pytest.mark.slow
async def test_component_answers_to_a_japanese_member_in_an_english_server(harness):
    """Every private answer a button or menu gives a member whose Discord is in Japanese is Japanese; what they
    post for everyone (a pick, a reroll's status) is in the server's language, English here."""
    fake, h = harness.fake, harness
    await h.start_bot(fake_clock=True, pick_cooldown_s=30.0, max_frames=12)  # picks 30 s apart (the fake's clock)
    alice, yuki = h.guild.add_member("alice"), h.guild.add_member("yuki", locale="ja")
    you = f"<@{yuki.id}>"

    job_id = job_id_of((await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=5, seed=3)).content)
    result = await h.result_message(job_id, timeout=90)
    job = await h.wait_state(job_id, "delivered")
    ref = f"{job_id}-{job.token}"
    picks = pick_ids(result)
    assert len(picks) == 5

    # a pick is public, in the server's language; a second one inside the pick cooldown is refused privately
    first = await fake.click(yuki, result, picks[0])
    assert not first.ephemeral
    assert first.content == f"🖼️ {you} picked candidate 1 (frame 1 of 5) from morph job #{job_id}."
    soon = await fake.click(yuki, result, picks[1])
    assert soon.ephemeral and soon.content == "❌ 少し待ってください。あと 30 秒で再び選べます。"
    fake.clock.advance(31)
    # the same frame again, from the menu: answered privately, with the frame
    again = await fake.select(yuki, result, f"morph:frames:{ref}", [picks[0].rsplit(":", 1)[1]])
    assert again.ephemeral and again.original.attachments
    assert again.content == f"🖼️ {you} さんがモーフ ジョブ #{job_id} から候補 1（5 フレーム中 1 番目）を選びました。"
    # what a modified client can send: a menu without a choice, a gap the result does not have
    blank = await fake.forge_component(yuki, result, f"morph:frames:{ref}", [])
    assert blank.ephemeral and blank.content == "❌ メニューからフレームを選んでください。"
    blank = await fake.forge_component(yuki, result, f"morph:refine:{ref}", [])
    assert blank.ephemeral and blank.content == "❌ メニューから隣り合う2つのフレームを選んでください。"
    gap = await fake.forge_component(yuki, result, f"morph:refine:{ref}", ["9"])
    assert gap.ephemeral
    assert gap.content == f"❌ モーフ #{job_id} には、間を細かくできるフレーム 10 と 11 がありません。"

    # ❌ Delete of someone else's result: refused; 🚩 Report: thanks, then "already reported"
    nope = await fake.click(yuki, result, f"morph:delete:{ref}")
    assert nope.ephemeral and not result.deleted
    assert nope.content == (f"❌ モーフ #{job_id} はあなたのものではありません。"
                            "削除できるのは作成者かサーバー管理者だけです。")
    report = await fake.click(yuki, result, f"morph:report:{ref}")
    assert report.ephemeral
    assert report.content == (f"🚩 ありがとうございます。モーフ #{job_id} をこのサーバーの管理者に通報しました"
                              f"（{ADMIN_CMD} 通報一覧）。")
    repeat = await fake.click(yuki, result, f"morph:report:{ref}")
    assert repeat.ephemeral
    assert repeat.content == f"🚩 モーフ #{job_id} はすでに通報済みです。サーバー管理者が確認できます。"

    # 🔍 Refine: the new job's status is public, in English; its result replies to this one
    refine = await fake.select(yuki, result, f"morph:refine:{ref}", ["1"])
    assert not refine.ephemeral and "🔍 Refine of job" in refine.content
    refined_id = job_id_of(refine.content)
    refined = await h.result_message(refined_id, timeout=90)
    refined_job = await h.wait_state(refined_id, "delivered")

    # 🔁 Reroll: public, in English; a third job over the per-person limit of 2 is refused privately
    await h.store.pause(h.guild.id, alice.id)  # the rerolls wait in the queue
    rerolls = [await fake.click(yuki, result, f"morph:reroll:{ref}") for _ in range(2)]
    assert all(not r.ephemeral and f"🔁 Reroll of job #{job_id} with seed" in r.content for r in rerolls)
    held = [job_id_of(r.content) for r in rerolls]
    full = await fake.click(yuki, result, f"morph:reroll:{ref}")
    assert full.ephemeral and full.content == (f"❌ すでにキューに 2 件のモーフがあります（#{held[0]}、#{held[1]}）。"
                                               f"上限は 2 件です。完成を待つか、{CANCEL_CMD} で取り消してください。")
    # ❌ Cancel on the status message: one's own job (the status says so, publicly), then someone else's
    status = rerolls[0].original
    cancel = await fake.click(yuki, status, status.custom_ids()[0])
    assert cancel.response_type == 7 and status.content == f"🚫 Morph job #{held[0]} was cancelled by {you}."
    theirs = (await fake.slash(alice, "morph", from_="a fox", to="an owl", frames=4)).original
    refused = await fake.click(yuki, theirs, theirs.custom_ids()[0])
    assert refused.ephemeral
    assert refused.content == (f"❌ モーフ #{job_id_of(theirs.content)} はあなたのものではありません。"
                               "取り消せるのは作成者かサーバー管理者だけです。")

    # ❌ Delete of one's own result when Discord does not let the bot remove the message; then a pick on it
    fake.fail_route("DELETE", rf"/messages/{refined.id}$", 403)
    gone = await fake.click(yuki, refined, f"morph:delete:{refined_id}-{refined_job.token}")
    assert gone.ephemeral and gone.content == f"🗑️ モーフ ジョブ #{refined_id} の結果を削除しました。"
    assert await eventually(lambda: gone.followups, 10)
    assert gone.followups[0].ephemeral and gone.followups[0].content == (
        "フレームは削除しましたが、Discord の権限でメッセージは消せませんでした。サーバー管理者が削除できます。")
    fake.clock.advance(31)
    expired = await fake.click(yuki, refined, pick_ids(refined)[0])
    assert expired.ephemeral
    assert expired.content.startswith(f"❌ モーフ #{refined_id} は期限切れです。フレームは削除されました")

    # the database locked by another process: a button is still answered in time, privately, in Japanese
    await h.settled()
    conn = await lock_database(h.tmp / "morph.sqlite3")
    try:
        down = await fake.click(yuki, result, f"morph:report:{ref}")
    finally:
        conn.rollback()
        conn.close()
    assert down.ephemeral
    assert down.content.startswith("⏳ モーフのキューが一時的に使えません（データベースが応答していません）")

    private = private_texts(fake, yuki)
    assert len(private) >= 14
    assert all(is_japanese(t) for t in private), private
    assert_no_english(private)
    # the check can fail: yuki's public pick in this English server is English
    with pytest.raises(AssertionError):
        assert_no_english([first.content])


@pytest.mark.slow
async def test_components_in_a_japanese_server(harness):
    """In a server whose language is Japanese every post a component causes is Japanese (picks from the menu and
    by reaction, a reroll's and a refine's status and result, a cancelled status, an expired pick, a result
    hidden by reports); a member whose Discord is in English still gets their private answers in English."""
    fake, h = harness.fake, harness
    ja = japanese_guild(fake)
    await h.start_bot(max_frames=12)
    yuki, sam = ja.add_member("yuki", locale="ja"), ja.add_member("sam")
    you, him = f"<@{yuki.id}>", f"<@{sam.id}>"

    job_id = job_id_of((await fake.slash(yuki, "morph", from_="a dog", to="a cat", frames=5, seed=3)).content)
    result = await h.result_message(job_id, timeout=90)
    job = await h.wait_state(job_id, "delivered")
    ref = f"{job_id}-{job.token}"
    assert result.content.startswith(f"🎞️ モーフ ジョブ #{job_id}（{you} さん）")

    chosen = await fake.select(sam, result, f"morph:frames:{ref}", ["2"])
    assert not chosen.ephemeral and chosen.original.attachments
    assert chosen.content == f"🖼️ {him} さんがモーフ ジョブ #{job_id} から候補 3（5 フレーム中 3 番目）を選びました。"
    await fake.react(sam, result, "2️⃣")
    reacted = await fake.wait_for_message(lambda m: m.message_reference is not None and "候補 2" in m.content, 10)
    assert reacted.content == f"🖼️ {him} さんがモーフ ジョブ #{job_id} から候補 2（5 フレーム中 2 番目）を選びました。"

    # 🔁 Reroll (held in the queue), then ❌ Cancel on its status: both public, in Japanese
    await h.store.pause(ja.id, yuki.id)
    reroll = await fake.click(sam, result, f"morph:reroll:{ref}")
    rerolled = job_id_of(reroll.content)
    assert not reroll.ephemeral
    assert reroll.content.startswith(f"🕓 {him} さんのモーフ ジョブ #{rerolled} を受け付けました")
    assert re.search(rf"\n🔁 ジョブ #{job_id} をシード \d+ でリロールします。$", reroll.content), reroll.content
    status = reroll.original
    cancel = await fake.click(sam, status, status.custom_ids()[0])
    assert cancel.response_type == 7
    assert status.content == f"🚫 モーフ ジョブ #{rerolled} は {him} さんが取り消しました。"
    await h.store.resume(ja.id, yuki.id)

    # 🔍 Refine: its status and its result (a reply) in Japanese
    refine = await fake.select(yuki, result, f"morph:refine:{ref}", ["1"])
    refined_id = job_id_of(refine.content)
    assert not refine.ephemeral and refine.content.endswith(
        f"\n🔍 ジョブ #{job_id} の細分化: フレーム 2 からフレーム 3 までを 6 フレームで描き直します。"
        "結果は元の投稿への返信として届きます。")
    refined = await h.result_message(refined_id, timeout=90)
    refined_job = await h.wait_state(refined_id, "delivered")
    assert refined.message_reference["message_id"] == str(result.id)
    assert refined.content.startswith(f"🎞️ モーフ ジョブ #{refined_id}（{you} さん）")
    assert "6 フレーム" in refined.content

    # sam's own private answer stays in English
    nope = await fake.click(sam, refined, f"morph:delete:{refined_id}-{refined_job.token}")
    assert nope.ephemeral and nope.content.startswith(f"❌ Morph #{refined_id} is not yours")
    # yuki deletes her result, but Discord keeps the message: a reaction on it is answered, publicly, "expired"
    fake.fail_route("DELETE", rf"/messages/{refined.id}$", 403)
    gone = await fake.click(yuki, refined, f"morph:delete:{refined_id}-{refined_job.token}")
    assert gone.ephemeral and gone.content == f"🗑️ モーフ ジョブ #{refined_id} の結果を削除しました。"
    await fake.react(sam, refined, "1️⃣")
    expired = await fake.wait_for_message(lambda m: m.message_reference is not None and "期限切れ" in m.content, 10)
    assert not expired.ephemeral and expired.content.startswith(f"❌ モーフ #{refined_id} は期限切れです。")

    # 🚩 one report hides the result (the server's setting): the public note is Japanese, sam's thanks English
    await h.store.set_limits(ja.id, yuki.id, report_hide_after=1)
    thanks = await fake.click(sam, result, f"morph:report:{ref}")
    assert thanks.ephemeral and thanks.content.startswith(f"🚩 Thanks: morph #{job_id} is reported")
    hidden = await fake.wait_for_message(lambda m: "非表示" in m.content and not m.ephemeral, 10)
    assert hidden.content == (f"🚩 モーフ ジョブ #{job_id} は 1 件の通報により非表示になりました。"
                              "サーバー管理者が確認できます。")
    await fake.wait_for_message(lambda m: m is result and m.deleted, 10)

    public = public_texts(fake, ja.id)
    assert len(public) >= 20
    assert_japanese(public)
    labels = {b.get("label") for b in refined.buttons()}
    assert {"リロール", "削除", "通報"} <= labels
    private = private_texts(fake, yuki)
    assert private and all(is_japanese(t) for t in private), private
    assert_no_english(public + private)
    with pytest.raises(AssertionError):  # the check can fail: sam's private answers are English
        assert_no_english(private_texts(fake, sam))


@pytest.mark.slow
async def test_morphadmin_for_a_japanese_admin(harness):
    """Every /morphadmin subcommand answers an admin whose Discord is in Japanese in Japanese, the audit log it
    shows included; what the subcommands do to public posts (a paused queue, cancelled jobs, a hidden result,
    ``limits language:``) is in the server's language."""
    fake, h = harness.fake, harness
    ja = japanese_guild(fake)
    await h.start_bot(max_frames=12)
    kenji = ja.add_member("kenji", admin=True, locale="ja")
    yuki, sam = ja.add_member("yuki", locale="ja"), ja.add_member("sam")
    mori, alice = h.guild.add_member("mori", admin=True, locale="ja"), h.guild.add_member("alice")
    k, y, s = (f"<@{m.id}>" for m in (kenji, yuki, sam))

    async def admin(name: str, who: FakeMember = kenji, **options) -> str:
        it = await fake.slash(who, f"morphadmin {name}", **options)
        assert it.ephemeral and is_japanese(it.content), (name, it.content)
        return it.content

    # limits language: in the English server an admin makes its public posts Japanese, then hands it back
    shown = await admin("limits", mori, language="ja")
    assert shown.startswith("✅ 制限を更新しました:\n") and "\n• 言語: 日本語 (ja)\n" in shown
    posted = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=4)
    assert posted.content.startswith(f"🕓 <@{alice.id}> さんのモーフ ジョブ #") and "を受け付けました" in posted.content
    assert "\n• 言語: Discord のサーバー言語\n" in await admin("limits", mori, language="auto")
    english = await fake.slash(alice, "morph", from_="a fox", to="an owl", frames=4)
    assert english.content.startswith(f"🕓 Morph job #{job_id_of(english.content)} queued for")

    # only admins; only the bot owner sees every server
    refused = await fake.slash(yuki, "morphadmin pause")
    assert refused.ephemeral
    assert refused.content == f"❌ {ADMIN_CMD} を使うには、このサーバーの「サーバー管理」権限が必要です。"
    assert await admin("list", everywhere=True) == "❌ 全サーバーを表示できるのはボットのオーナーだけです。"
    assert await admin("stats", everywhere=True) == "❌ 全サーバーを表示できるのはボットのオーナーだけです。"

    # pause: the morphs queued meanwhile say so, in Japanese
    assert await admin("pause") == f"⏸️ 一時停止しました。{ADMIN_CMD} 再開 まで、新しいモーフはキューで待機します。"
    queued = [await fake.slash(sam, "morph", from_="a dog", to="a cat", frames=4),
              await fake.slash(yuki, "morph", from_="a fox", to="an owl", frames=4),
              await fake.slash(sam, "morph", from_="a cow", to="a pig", frames=4)]
    a, b, c = (job_id_of(it.content) for it in queued)
    assert all("（サーバー管理者がキューを一時停止中）です。" in it.content for it in queued)
    listing = await admin("list")
    assert listing.startswith("モーフ ジョブ（このサーバー）:\n")
    assert f"\n• #{a} {s} **a dog** → **a cat** · 4 フレーム · 1 番目\n" in listing
    assert f"\n⏸️ このサーバーのキューは一時停止中です（{ADMIN_CMD} 再開）。\n" in listing

    # cancel, ban (which cancels the banned member's queued morph), unban, clear; each status message says so
    assert await admin("cancel", job=a) == f"🚫 {s} さんのモーフ ジョブ #{a} を取り消しました。"
    assert await admin("cancel", job=999) == "❌ モーフ #999 はありません。"
    assert await admin("cancel", job=a) == (f"❌ モーフ #{a} は現在「取り消し済み」です。取り消せるのは待機中か生成中の"
                                            "モーフだけです。")
    assert await admin("ban", user=yuki) == (f"🔨 {y} さんはこのサーバーで /モーフ を使えなくなりました"
                                             "（待機中のモーフ 1 件を取り消しました）。")
    banned = await fake.slash(yuki, "morph", from_="a fox", to="an owl", frames=4)
    assert banned.ephemeral and banned.content == "❌ あなたはこのサーバーで /モーフ の利用を禁止されています。"
    assert await admin("unban", user=yuki) == f"✅ {y} さんはこのサーバーで再び /モーフ を使えます。"
    assert await admin("unban", user=yuki) == f"{y} さんは禁止されていません。"
    assert await admin("clear") == "🧹 待機中のモーフを 1 件取り消しました。"
    for it in queued:
        await fake.wait_for_message(lambda m, it=it: m is it.original and m.content == (
            f"🚫 モーフ ジョブ #{job_id_of(it.content)} は {k} さんが取り消しました。"), timeout=10)

    # the audit log of those actions, in Japanese: the actions by the commands' names, their details worded
    entries = audit_lines(await admin("list"))
    assert [e.split(" UTC ", 1)[1] for e in entries] == [
        f"{k} 全取り消し: 待機中のモーフ 1 件を取り消し",
        f"{k} 禁止解除: {y} さん（禁止されていませんでした）",
        f"{k} 禁止解除: {y}",
        f"{k} 禁止: {y} さん（待機中 1 件を取り消し）",
        f"{k} 取り消し: #{a}（{s} さん、待機中）",
    ]
    assert await admin("resume") == "▶️ 再開しました。"

    # limits with options, and a refused one
    shown = await admin("limits", nsfw="allow", report_hide_after=1, banned_words="kraken")
    assert shown.startswith("✅ 制限を更新しました:\n")
    for line in ("• 年齢制限: 許可（年齢制限チャンネルではフィルターなしで投稿します）", "• 通報で非表示: 通報 1 件",
                 "• 禁止ワード: 1 (kraken)", "• 一時停止中: いいえ"):
        assert f"\n{line}\n" in shown, (line, shown)
    shown = await admin("limits", nsfw="deny")
    assert "\n• 年齢制限: 拒否（どのチャンネルでもフィルターをかけます）\n" in shown
    refused_limit = await admin("limits", allowed_channels="nope")
    assert refused_limit.startswith("❌ 許可チャンネル: nope はチャンネルではありません")
    assert "「最大フレーム数」は最大 12 です" in await admin("limits", max_frames=20)
    assert (await admin("limits")).startswith("このサーバーの制限:\n• 1人あたりの上限: 2\n")

    # reports: none yet; one report hides a result (a public note in Japanese), and the list shows it
    assert await admin("reports") == "このサーバーに通報されたモーフはありません。"
    d = job_id_of((await fake.slash(sam, "morph", from_="a tree", to="a car", frames=4)).content)
    result = await h.result_message(d, timeout=90)
    job = await h.wait_state(d, "delivered")
    thanks = await fake.click(yuki, result, f"morph:report:{d}-{job.token}")
    assert thanks.ephemeral and is_japanese(thanks.content)
    hidden = await fake.wait_for_message(lambda m: "非表示" in m.content and not m.ephemeral, 10)
    assert hidden.content == (f"🚩 モーフ ジョブ #{d} は 1 件の通報により非表示になりました。"
                              "サーバー管理者が確認できます。")
    assert await admin("reports") == (f"通報されたモーフ（新しい通報順）:\n• #{d}（{s} さん）: 通報 1 件（非表示）\n"
                                      f"{ADMIN_CMD} 削除 ジョブ番号:N で削除、"
                                      f"{ADMIN_CMD} 禁止 で作成者を禁止できます。")

    # delete: the result message goes; an unknown job is refused
    e = job_id_of((await fake.slash(sam, "morph", from_="a boat", to="a kite", frames=4)).content)
    result = await h.result_message(e, timeout=90)
    await h.wait_state(e, "delivered")
    assert await admin("delete", job=e) == f"🗑️ モーフ ジョブ #{e} の結果を削除しました。"
    await fake.wait_for_message(lambda m: m is result and m.deleted, 10)
    assert await admin("delete", job=999) == "❌ モーフ #999 はありません。"

    # stats, with the latest audit entries: the bot's own hiding, the report, the deletion, the limits
    stats = await admin("stats")
    assert stats.startswith("📊 モーフの統計（このサーバー）\n• キュー: 待機中 0、生成中 0、投稿待ち 0。")
    assert "\n• 累計: 投稿済み 2、失敗 0、取り消し 3、安全フィルターで差し止め 0\n" in stats
    assert [e.split(" UTC ", 1)[1] for e in audit_lines(stats)] == [
        f"{k} 削除: #{e}（{s} さん）",
        f"ボット 非表示: #{d}（{s} さん）、通報 1 件",
        f"{y} 通報: #{d}（{s} さん、計 1 件）",
        f"{k} 制限: 年齢制限=いいえ",
        f"{k} 制限: 禁止ワード=1 語、年齢制限=はい、通報で非表示=1",
    ]

    private = private_texts(fake, kenji) + private_texts(fake, mori) + private_texts(fake, yuki)
    public = public_texts(fake, ja.id)
    assert len(private) >= 30 and len(public) >= 10
    assert all(is_japanese(t) for t in private), private
    assert_japanese(public)
    assert_no_english(private + public)
    every_line = [line for t in private + public for line in t.splitlines()]
    # no English beyond the catalogue either: the Latin words left are the values typed or shown as they are
    # typed (ja, kraken, nope, both, all, N), names (Discord, ID) and units
    assert {w for line in every_line for w in latin_words(line)} <= {
        "ja", "kraken", "nope", "both", "all", "N", "Discord", "ID", "cpu", "GiB", "px"}
    # the checks can fail: the audit log as it read before it was translated, an English answer
    assert latin_words(f"• 2026-01-01 00:00 UTC {k} clear: 1 queued morph cancelled") == [
        "clear", "queued", "morph", "cancelled"]
    with pytest.raises(AssertionError):
        assert_no_english([english.content])
    assert not any(m.pings_anyone for m in fake.all_messages()) and fake.violations == []


@pytest.mark.slow
async def test_withheld_frames_refused_in_japanese(toy_harness, toy_checker):  # noqa: F811
    """A result the safety filter kept some frames of: a Japanese member who sends a withheld frame, the gap next
    to one or a reroll anyway is refused in Japanese; the result says, in the Japanese server, what was withheld."""
    h, fake = toy_harness, toy_harness.fake
    ja = japanese_guild(fake)
    await start(h, toy_checker)
    yuki, sam = ja.add_member("yuki", locale="ja"), ja.add_member("sam")
    job_id = job_id_of((await fake.slash(sam, "morph", **PARTLY)).content)
    result = await h.result_message(job_id, timeout=300)
    job = await h.wait_state(job_id, "delivered")
    withheld = job.safety.withheld
    assert withheld
    assert f"🛡️ 16 フレーム中 {len(withheld)} フレームを安全フィルターで差し止めました" in result.content, result.content
    ref = f"{job_id}-{job.token}"
    frame = await fake.forge_component(yuki, result, f"morph:frames:{ref}", [str(withheld[0])])
    assert frame.ephemeral
    assert frame.content == (f"❌ モーフ #{job_id} のフレーム {withheld[0] + 1} は"
                             "安全フィルターで差し止められたため、選べません。")
    gap = withheld[0] if withheld[0] + 1 < 16 else withheld[0] - 1
    refine = await fake.forge_component(yuki, result, f"morph:refine:{ref}", [str(gap)])
    assert refine.ephemeral
    assert refine.content == (f"❌ モーフ #{job_id} のフレーム {gap + 1} と {gap + 2} のどちらかが"
                              "安全フィルターで差し止められたため、その間は細分化できません。")
    reroll = await fake.click(yuki, result, f"morph:reroll:{ref}")
    assert reroll.ephemeral
    assert reroll.content == (f"❌ モーフ #{job_id} のフレームは安全フィルターで差し止められたため、"
                              "リロールできません。プロンプトを変えて /モーフ をお使いください。")
    private = private_texts(fake, yuki)
    assert len(set(private)) == 3 and all(is_japanese(t) for t in private)
    assert_no_english(private + public_texts(fake, ja.id))

"""Store: enqueueing under the per-user, per-guild and bot-wide limits, bans and cooldowns, and the
operator's settings as ceilings."""

import pytest
from store_helpers import (
    ADMIN,
    ALICE,
    BOB,
    C1,
    C2,
    CAROL,
    G1,
    G2,
    MiB,
    count_jobs,
    refused,
    rendered_job,
    req,
    run,
    submit,
)

from bot.jobs import Refusal, Refused
from bot.messages import refusal_text
from bot.result import JobResult
from bot.store import Limits, Store
from morph.request import MorphError

# ---------------------------------------------------------------- enqueue and limits

async def test_enqueue_stores_everything(store, clock):
    job = await store.enqueue(guild_id=G1, channel_id=C1, user_id=ALICE, request=req("  a   dog ", "a cat", frames=8),
                              upload_limit=25 * MiB, interaction_token="tok", application_id=77, boomerang=True)
    assert job.id == 1 and job.state == "queued"
    assert job.request.prompts[0] == "a dog" and job.request.frames == 8  # validated and normalised
    assert (job.guild_id, job.channel_id, job.user_id, job.upload_limit) == (G1, C1, ALICE, 25 * MiB)
    assert job.created_at == clock.t and job.attempts == 0 and job.boomerang
    assert job.interaction_token == "tok" and job.application_id == 77
    assert job.interaction_expires_at == clock.t + 15 * 60
    assert job.interaction_alive(clock.t + 899) and not job.interaction_alive(clock.t + 901)
    again = await store.get(job.id)
    assert again == job
    assert await store.get(999) is None


async def test_bad_input_is_refused_and_nothing_written(store):
    for bad in (req(""), req("a", "   "), req("x" * 5000), req("a\x00b"), req("@everyone"), req("a", "<@&1>"),
                req(frames=1), req(frames=61), req(steps=0), req(seed=-5)):
        with pytest.raises(Refused):
            await submit(store, request=bad)
    assert await count_jobs(store) == 0


async def test_refused_is_a_morph_error():
    assert issubclass(Refused, MorphError)


async def test_per_user_active_limit_names_the_jobs(store, clock):
    j1 = await submit(store, clock=clock)
    j2 = await submit(store, clock=clock)
    with refused(r"You already have 2 morphs in the queue") as e:
        await submit(store, clock=clock)
    assert e.value.kind == Refusal.USER_QUEUE_FULL and e.value.values["jobs"] == [j1.id, j2.id]
    msg = refusal_text(e.value)
    assert f"You already have 2 morphs in the queue (#{j1.id}, #{j2.id})" in msg and "/morph-cancel" in msg
    # another user and the same user in another guild are not affected
    await submit(store, user=BOB, clock=clock)
    await submit(store, guild=G2, clock=clock)
    # a running job still counts, a finished one does not
    claimed = await store.claim(run("w1"))
    assert claimed.id == j1.id
    with pytest.raises(Refused) as still:
        await submit(store, clock=clock)
    assert still.value.kind == Refusal.USER_QUEUE_FULL
    await store.mark_rendered(j1.id, JobResult(frame_count=2), run("w1"))
    j3 = await submit(store, clock=clock)
    assert j3.state == "queued"
    assert await count_jobs(store) == 5


async def test_guild_queue_cap(store, clock):
    await store.set_limits(G1, ADMIN, max_guild_queue=3)
    for u in (ALICE, BOB, CAROL):
        await submit(store, user=u, clock=clock)
    with refused(r"queue is full \(3 .*limit is 3"):
        await submit(store, user=44, clock=clock)
    await submit(store, user=44, guild=G2, clock=clock)  # other guild unaffected
    assert await count_jobs(store) == 4


async def test_cooldown_with_injected_time(store, clock):
    await submit(store)
    clock.advance(10)
    with refused("another morph in 20 s"):
        await submit(store)
    with refused("in 1 s"):
        await submit(store, now=clock.t + 19.9)
    await submit(store, now=clock.t + 20)
    assert await count_jobs(store) == 2
    # a guild may make it longer, never shorter than the operator's MORPH_COOLDOWN_S
    with refused("at least 30 s"):
        await store.set_limits(G2, ADMIN, cooldown_s=0)
    await store.set_limits(G2, ADMIN, cooldown_s=100)
    await submit(store, guild=G2)
    with refused("another morph in 60 s"):
        await submit(store, guild=G2, now=clock.t + 40)
    assert await count_jobs(store) == 3


async def test_banned_user_banned_words_and_channel_allow_list(store, clock):
    cancelled = await store.ban(G1, ALICE, ADMIN)
    assert cancelled == []
    with refused("banned"):
        await submit(store)
    await submit(store, guild=G2, clock=clock)  # only banned in G1
    assert await store.unban(G1, ALICE, ADMIN) is True
    await submit(store, clock=clock)

    await store.set_limits(G1, ADMIN, banned_words=["Horse", "hot dog"])
    with refused("second prompt contains a word this server does not allow"):
        await submit(store, user=BOB, request=req("a dog", "a HORSE"))
    with refused("negative prompt"):
        await submit(store, user=BOB, request=req(negative="hot  dog"))
    await submit(store, user=BOB, guild=G2, request=req("a dog", "a horse"), clock=clock)

    await store.set_limits(G1, ADMIN, allowed_channels=[C2])
    with refused(f"not enabled in this channel. Use it in <#{C2}>"):
        await submit(store, user=CAROL, channel=C1)
    await submit(store, user=CAROL, channel=C2, clock=clock)
    assert await count_jobs(store) == 4


async def test_ban_cancels_queued_jobs_of_that_user(store, clock):
    a = await submit(store, clock=clock)
    b = await submit(store, user=BOB, clock=clock)
    cancelled = await store.ban(G1, ALICE, ADMIN)
    assert [(j.id, j.state) for j in cancelled] == [(a.id, "cancelled")]  # the jobs cancelled, as they are now
    assert (await store.get(a.id)).state == "cancelled"
    assert (await store.get(b.id)).state == "queued"


async def test_guild_frame_cap(store):
    await store.set_limits(G1, ADMIN, max_frames=10)
    with refused("at most 10 on this server"):
        await submit(store, request=req(frames=11))
    assert (await submit(store, request=req(frames=10))).request.frames == 10


async def test_set_limits_validates_and_resets(store):
    limits = await store.get_limits(G1)
    assert limits == Limits(paused=False, max_user_active=2, max_guild_queue=20, cooldown_s=30.0, max_frames=60,
                            banned_words=(), allowed_channels=(), default_format="both")
    for bad in ({"max_user_active": 0}, {"max_user_active": "3"}, {"cooldown_s": -1}, {"max_frames": 500},
                {"allowed_channels": ["abc"]}, {"nonsense": 1}, {}, {"default_format": "webm"}):
        with pytest.raises(Refused):
            await store.set_limits(G1, ADMIN, **bad)
    assert await store.get_limits(G1) == limits  # nothing changed
    new = await store.set_limits(G1, ADMIN, max_user_active=1, banned_words="Foo, bar baz", allowed_channels=C1)
    assert new.max_user_active == 1 and new.banned_words == ("bar baz", "foo") and new.allowed_channels == (C1,)
    reset = await store.set_limits(G1, ADMIN, max_user_active=None, allowed_channels=None)
    assert reset.max_user_active == 2 and reset.allowed_channels == ()
    assert (await store.get_limits(G2)).max_user_active == 2  # other guild untouched


async def test_the_format_of_a_job_comes_from_the_command_else_the_servers_default(store, clock):
    """``/morph format:`` wins; without it the server's default_format, else MORPH_FORMAT (here: both). An
    unknown format is refused and queues nothing."""
    assert (await submit(store, clock=clock)).format == "both"
    assert (await store.set_limits(G1, ADMIN, default_format="mp4")).default_format == "mp4"
    assert (await submit(store, user=BOB, clock=clock)).format == "mp4"
    assert (await submit(store, user=CAROL, output_format="gif", clock=clock)).format == "gif"
    assert (await submit(store, user=BOB, guild=G2, clock=clock)).format == "both"  # another server's default
    with refused("format must be one of: mp4, gif, both"):
        await submit(store, user=ALICE, output_format="webm", clock=clock)
    assert len(await store.list_jobs(None, states=["queued"])) == 4
    assert (await store.set_limits(G1, ADMIN, default_format=None)).default_format == "both"


async def test_a_refine_job_remembers_its_parent_and_the_message_to_reply_to(store, clock):
    parent = await submit(store, clock=clock)
    child = await submit(store, user=BOB, request=req().refine(0.25, 0.5, 6), parent_id=parent.id,
                         reply_to_message_id=2 ** 62, clock=clock)
    again = await store.get(child.id)
    assert (again.parent_id, again.reply_to_message_id) == (parent.id, 2 ** 62)
    assert (again.request.t_start, again.request.t_end, again.request.frames) == (0.25, 0.5, 6)
    assert (parent.parent_id, parent.reply_to_message_id) == (None, None)


# ---------------------------------------------------------------- hardening: limits are the operator's ceilings

async def test_operator_settings_are_ceilings_even_when_lowered_later(settings, clock):
    roomy = settings.replace(max_user_active=50, max_guild_queue=5000, max_frames=120, cooldown_s=0)
    s = await Store.open(roomy.db_path, roomy, clock=clock)
    await s.set_limits(G1, ADMIN, max_user_active=50, max_guild_queue=5000, max_frames=120, cooldown_s=0)
    await s.close()
    # the operator tightens the bot's settings: the guild's stored values no longer count
    strict = roomy.replace(max_user_active=2, max_guild_queue=3, max_frames=60, cooldown_s=30)
    store = await Store.open(strict.db_path, strict, clock=clock)
    try:
        limits = await store.get_limits(G1)
        assert (limits.max_user_active, limits.max_guild_queue, limits.max_frames, limits.cooldown_s) == \
            (2, 3, 60, 30.0)
        with refused("at most 60 on this server"):
            await submit(store, request=req(frames=120))
        await submit(store)
        with refused("another morph in 30 s"):
            await submit(store, user=ALICE)
        await submit(store, user=ALICE, clock=clock, now=clock.t + 30)
        with refused("limit is 2"):
            await submit(store, user=ALICE, now=clock.t + 100)
        await submit(store, user=BOB)
        with refused("limit is 3"):
            await submit(store, user=CAROL)
        # and a server admin cannot loosen them again
        for key, value in (("max_user_active", 3), ("max_guild_queue", 4), ("max_frames", 61)):
            with refused(f"{key} can be at most"):
                await store.set_limits(G1, ADMIN, **{key: value})
        with refused("cooldown must be at least 30"):  # the option as the member's client names it
            await store.set_limits(G1, ADMIN, cooldown_s=29)
        assert (await store.set_limits(G1, ADMIN, max_user_active=1)).max_user_active == 1  # stricter is fine
    finally:
        await store.close()


async def test_the_bot_wide_queue_cap_counts_every_guild(settings, clock):
    settings = settings.replace(cooldown_s=0, max_queue=3)
    store = await Store.open(settings.db_path, settings, clock=clock)
    try:
        for user, guild in ((ALICE, G1), (BOB, G2), (CAROL, 3003)):
            await submit(store, user=user, guild=guild)
        await store.claim(run("w1"))  # a rendering job still counts
        with refused(r"bot's queue is full \(3 morphs"):
            await submit(store, user=44, guild=4004)
        assert await count_jobs(store) == 3
    finally:
        await store.close()


@pytest.mark.slow
async def test_claims_take_turns_across_guilds_3000_jobs_vs_one(settings, clock):
    """The issue's case: server A queued 3,000 jobs; server B's one job must come next, not at 3,001."""
    settings = settings.replace(cooldown_s=0, max_user_active=3000, max_guild_queue=3000, max_queue=5000)
    store = await Store.open(settings.db_path, settings, clock=clock)
    try:
        a = [await submit(store, user=ALICE, guild=G1) for _ in range(3000)]
        first = await store.claim(run("w1"))
        assert first.id == a[0].id
        b = await submit(store, user=BOB, guild=G2)
        assert await store.position(b.id) == 1 and await store.position(a[1].id) == 2
        assert (await store.claim(run("w1"))).id == b.id  # delayed by the one job already rendering, no more
        c1, c2 = await submit(store, user=CAROL, guild=3003), await submit(store, user=CAROL, guild=3003)
        order = [(await store.claim(run("w2"))).id for _ in range(5)]
        assert order == [c1.id, a[1].id, c2.id, a[2].id, a[3].id]
    finally:
        await store.close()


async def test_positions_follow_the_claim_order(store, clock):
    G3 = 3003
    jobs = [await submit(store, user=100 + i, guild=g, clock=clock)
            for i, g in enumerate([G1, G1, G1, G2, G3, G2, G1, G3])]
    await store.claim(run("w1"))
    await store.pause(G3, ADMIN)
    predicted = sorted((pos, j.id) for j, pos, paused in await store.queued_positions() if not paused)
    claimed = []
    while (job := await store.claim(run("w1"))) is not None:
        claimed.append(job.id)
    assert claimed == [job_id for _, job_id in predicted]
    assert len(claimed) == len(jobs) - 1 - 2  # the first claim and G3's two paused jobs


async def test_leaving_a_guild_cancels_its_jobs(store, clock):
    a = await submit(store, clock=clock)
    b = await submit(store, user=BOB, clock=clock)
    other = await submit(store, user=CAROL, guild=G2, clock=clock)
    running = await store.claim(run("w1"))
    cancelled = await store.guild_left(G1)
    assert sorted(j.id for j in cancelled) == [a.id, b.id] and running.id in (a.id, b.id)
    assert {(await store.get(j.id)).state for j in (a, b)} == {"cancelled"}
    assert (await store.get(other.id)).state == "queued"
    assert await store.heartbeat(running.id, run("w1")) == "cancelled"  # the worker stops rendering it
    assert (await store.audit_log(G1))[0]["action"] == "left"
    assert await store.guild_left(G1) == []


async def test_withdrawn_jobs_count_for_no_limit(store, clock):
    job = await submit(store)
    assert await store.withdraw(job.id)
    j = await store.get(job.id)
    assert j.state == "cancelled" and j.withdrawn_at == clock.t
    again = await submit(store)  # no "Slow down": the user never saw the first one
    assert again.state == "queued"
    with refused("Slow down"):
        await submit(store)  # a job they did see counts as before


async def test_ids_beyond_64_bit_name_no_job(store):
    for big in (2 ** 63, 10 ** 23, 10 ** 40, 0, -1):
        assert await store.get(big) is None
        with refused(f"There is no morph #{big}"):
            await store.cancel(big, actor_id=ALICE)
        with refused("no morph"):
            await store.pick(big, user_id=ALICE, frame=0)


# ---------------------------------------------------------------- the server's language

async def test_a_job_is_written_in_the_servers_language(store, clock):
    """A job's public messages are in the guild's ``language`` setting, else in its preferred locale (as
    Discord sends it) when the bot has a catalogue for it, else English; the setting is audited."""
    assert (await submit(store, clock=clock, guild_locale="ja")).language == "ja"
    assert (await submit(store, user=BOB, clock=clock, guild_locale="en-US")).language == "en"
    assert (await submit(store, user=CAROL, clock=clock, guild_locale="fr")).language == "en"  # no French catalogue
    limits = await store.set_limits(G2, ADMIN, language="ja")
    assert limits.language == "ja" and (await store.get_limits(G2)).language == "ja"
    assert (await submit(store, guild=G2, clock=clock, guild_locale="en-US")).language == "ja"  # the setting wins
    assert (await store.audit_log(G2))[0]["facts"] == {"changes": {"language": "ja"}}
    await store.set_limits(G2, ADMIN, language=None)  # back to the server's own language
    assert (await store.get_limits(G2)).language is None
    assert (await submit(store, user=BOB, guild=G2, clock=clock, guild_locale="en-GB")).language == "en"
    with refused(r"language must be one of: en, ja \(got xx\)") as e:
        await store.set_limits(G2, ADMIN, language="xx")
    assert refusal_text(e.value, "ja").startswith("「言語」は次のいずれかにしてください")  # the option's own name
    assert (await store.get_limits(G2)).language is None  # nothing changed


async def test_every_audit_entry_reads_in_the_admins_language(store, settings, clock):
    """What the Store audits is an action and its facts (``audit_log.detail``: JSON, no words, no mentions);
    ``/morphadmin list`` and ``stats`` word each entry in the admin's language (``bot.cogs.admin.format_audit``);
    an entry from before migration 0013 keeps its line, shown as written."""
    import re

    from bot.cogs.admin import format_audit

    queued = await submit(store, clock=clock)
    await store.cancel(queued.id, actor_id=ADMIN, admin=True, guild_id=G1)
    await store.pause(G1, ADMIN)
    await store.resume(G1, ADMIN)
    await submit(store, user=BOB, clock=clock)
    await store.clear(G1, ADMIN)
    await submit(store, user=CAROL, clock=clock)
    await store.ban(G1, CAROL, ADMIN)
    await store.unban(G1, CAROL, ADMIN)
    await store.unban(G1, CAROL, ADMIN)  # was not banned: audited too
    await store.set_limits(G1, ADMIN, max_frames=30, banned_words=["kraken"], allowed_channels=[C1, C2],
                           nsfw_allow=True, report_hide_after=1)
    await store.set_limits(G1, ADMIN, language=None)
    reported = await rendered_job(store, settings, user=BOB)
    await store.report(reported.id, user_id=ALICE)  # hidden by the bot after one report
    clock.advance(60)
    deleted = await rendered_job(store, settings, user=BOB)
    await store.delete_result(deleted.id, actor_id=ADMIN, admin=True, guild_id=G1)
    clock.advance(60)
    await submit(store, clock=clock)
    await store.guild_left(G1)
    entries = await store.audit_log(G1, limit=50)
    assert {e["action"] for e in entries} == {"cancel", "pause", "resume", "clear", "ban", "unban", "limits",
                                              "report", "hide", "delete", "left"}

    ja = format_audit(entries, "ja").splitlines()
    assert ja[0] == "監査ログ（新しい順）:" and len(ja) == len(entries) + 1
    leftover = {w for line in ja for w in re.findall(r"[A-Za-z]{2,}", re.sub(r"<@\d+>|\bUTC\b|Discord", "", line))}
    assert leftover == set(), ja  # (mentions, numbers and Discord's name are all that is not Japanese)
    shown = [line.split(" UTC ", 1)[1] for line in ja[1:]]
    assert "ボット 退出: ボットがサーバーから退出したため、モーフ 1 件を取り消し" in shown
    assert f"<@{ADMIN}> 取り消し: #{queued.id}（<@{ALICE}> さん、待機中）" in shown
    assert f"<@{ADMIN}> 制限: 言語=Discord のサーバー言語" in shown
    assert (f"<@{ADMIN}> 制限: 最大フレーム数=30、禁止ワード=1 語、許可チャンネル=<#{C1}>、<#{C2}>、年齢制限=はい、"
            "通報で非表示=1") in shown
    en = [line.split(" UTC ", 1)[1] for line in format_audit(entries, "en").splitlines()[1:]]
    assert f"the bot hide: #{reported.id} by <@{BOB}> hidden after 1 report" in en
    assert f"<@{ADMIN}> unban: <@{CAROL}> (was not banned)" in en
    # what is stored: facts only (the banned words themselves stay out of the log)
    stored = {e["action"]: e["facts"] for e in entries}
    assert stored["cancel"] == {"job": queued.id, "author": ALICE, "state": "queued"}
    assert stored["hide"] == {"job": reported.id, "author": BOB, "count": 1} and stored["pause"] == {}
    assert "kraken" not in str(entries)
    # an entry of before 0013: its line as it is, made inert
    other = format_audit([{"guild_id": G1, "actor_id": ADMIN, "action": "clear", "facts": {"text": "all of *them*"},
                           "created_at": 0}], "ja")
    assert other.endswith(f"<@{ADMIN}> 全取り消し: all of \\*them\\*")

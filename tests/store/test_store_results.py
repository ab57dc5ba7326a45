"""Store: cancel and admin scope, picks, deleting a result, retention purge, job identity and files."""
import json
import os
import time
from pathlib import Path

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
    refused,
    rendered_job,
    run,
    sqlite_only,
    stored,
    submit,
)

from bot.config import Settings
from bot.result import JobResult
from bot.store import Store
from morph.request import RenderRequest

# ---------------------------------------------------------------- cancel and admin scope

async def test_cancel_permissions(store, clock):
    a = await submit(store, clock=clock)
    with refused("not yours"):
        await store.cancel(a.id, actor_id=BOB)
    with refused("another server"):
        await store.cancel(a.id, actor_id=ADMIN, admin=True, guild_id=G2)
    with refused("no morph #404"):
        await store.cancel(404, actor_id=ALICE)
    assert (await store.get(a.id)).state == "queued"
    assert await store.audit_log(None) == []  # refused attempts change nothing
    j = await store.cancel(a.id, actor_id=ALICE)
    assert j.state == "cancelled" and j.cancelled_by == ALICE and j.finished_at == clock.t
    with refused("already cancelled"):
        await store.cancel(a.id, actor_id=ALICE)
    assert await store.audit_log(G1) == []  # the author's own cancel is not an admin action

    b = await submit(store, clock=clock)
    running = await store.claim(run("w1"))
    assert running.id == b.id
    j = await store.cancel(b.id, actor_id=ADMIN, admin=True, guild_id=G1)
    assert j.state == "cancelled"
    assert await store.heartbeat(b.id, run("w1")) == "cancelled"  # how the worker learns about it
    # a late render does not resurrect it
    assert await store.mark_rendered(b.id, JobResult(frame_count=0), run("w1")) is False
    log = await store.audit_log(G1)
    assert [(r["action"], r["actor_id"]) for r in log] == [("cancel", ADMIN)]
    assert log[0]["facts"] == {"job": b.id, "author": b.user_id, "state": "running"}
    # bot owner: admin without a guild
    c = await submit(store, guild=G2, clock=clock)
    assert (await store.cancel(c.id, actor_id=ADMIN, admin=True)).state == "cancelled"


async def test_admin_ops_are_scoped_and_audited(store, clock):
    mine = [await submit(store, user=u, clock=clock) for u in (ALICE, BOB)]
    other = await submit(store, user=CAROL, guild=G2, clock=clock)
    assert {j.id for j in await store.list_jobs(G1)} == {j.id for j in mine}
    assert {j.id for j in await store.list_jobs(None)} == {j.id for j in mine} | {other.id}
    await store.pause(G1, ADMIN)
    assert not await store.is_paused(G2)
    await store.resume(G1, ADMIN)
    cleared = await store.clear(G1, ADMIN)
    assert sorted(j.id for j in cleared) == sorted(j.id for j in mine) and {j.state for j in cleared} == {"cancelled"}
    assert (await store.get(other.id)).state == "queued"
    assert await store.list_jobs(G1) == []
    assert [j.id for j in await store.list_jobs(G1, states=["cancelled"])] == [mine[1].id, mine[0].id]
    await store.ban(G1, BOB, ADMIN)
    await store.unban(G1, BOB, ADMIN)
    await store.set_limits(G1, ADMIN, cooldown_s=45, banned_words=["x", "y"])
    log = await store.audit_log(G1)
    assert [r["action"] for r in log] == ["limits", "unban", "ban", "clear", "resume", "pause"]
    assert all(r["guild_id"] == G1 and r["actor_id"] == ADMIN and r["created_at"] == clock.t for r in log)
    assert log[3]["facts"] == {"count": 2} and log[2]["facts"] == {"user": BOB, "count": 0}
    assert log[1]["facts"] == {"user": BOB, "was_banned": True}
    assert log[0]["facts"] == {"changes": {"cooldown_s": 45.0, "banned_words": 2}}  # how many words, not which
    assert await store.audit_log(G2) == []
    assert len(await store.audit_log(G1, limit=2)) == 2


async def test_stats(store, clock):
    a = await submit(store, clock=clock)
    b = await submit(store, user=BOB, clock=clock)
    await submit(store, user=CAROL, guild=G2, clock=clock)
    await store.claim(run("w1"))
    clock.advance(12)
    await store.mark_rendered(a.id, JobResult(frame_count=2), run("w1"))
    assert (await store.claim(run("w1"))).guild_id == G2  # G2's turn: G1 was served last
    await store.mark_failed(b.id, "bad")
    st = await store.stats(G1)
    assert (st["queued"], st["running"], st["rendered"], st["failed"]) == (0, 0, 1, 1)
    assert st["queue_total"] == 0 and st["jobs_last_hour"] == 2 and st["done_last_hour"] == 1
    assert st["failed_last_hour"] == 1 and st["paused"] is False
    assert st["mean_render_s"] == pytest.approx(12)
    assert (await store.stats(None))["running"] == 1


# ---------------------------------------------------------------- picks, delete, purge


async def test_pick_records_and_returns_the_frame(store, settings):
    job = await rendered_job(store, settings)
    picked = await store.pick(job.id, user_id=BOB, frame=2, source="reaction")
    assert picked.data == b"png2" and not picked.repeat
    for bad in (3, -1, "1"):
        with refused("frames 1 to 3"):
            await store.pick(job.id, user_id=BOB, frame=bad)
    assert [(p["user_id"], p["frame"], p["source"]) for p in await store.picks(job.id)] == [(BOB, 2, "reaction")]
    queued = await submit(store, user=CAROL)
    with refused("no frames to pick"):
        await store.pick(queued.id, user_id=BOB, frame=0)


async def test_purge_deletes_old_artifacts_and_picks_say_expired(store, settings, clock):
    old = await rendered_job(store, settings, user=ALICE, now=clock.t - 15 * 86400)
    new = await rendered_job(store, settings, user=BOB, now=clock.t - 13 * 86400)
    assert await store.purge() == 1
    assert not await stored(store, old) and await stored(store, new)
    assert (await store.get(old.id)).expired and not (await store.get(new.id)).expired
    with refused("has expired"):
        await store.pick(old.id, user_id=BOB, frame=0)
    assert (await store.pick(new.id, user_id=BOB, frame=0, now=clock.t + 10)).data == b"png0"
    assert await store.purge() == 0  # idempotent
    assert await store.picks(old.id) == []
    assert await store.purge(now=clock.t + 2 * 86400) == 1
    assert not await stored(store, new)
    # a result still waiting to be posted keeps its files however old it is
    waiting = await rendered_job(store, settings, user=CAROL, now=clock.t - 30 * 86400, deliver=False)
    assert await store.purge() == 0 and await stored(store, waiting)
    await store.mark_delivered(waiting.id, 1)
    assert await store.purge() == 1 and not await stored(store, waiting)


async def test_delete_result(store, settings):
    job = await rendered_job(store, settings, deliver=False)
    with refused("not yours"):
        await store.delete_result(job.id, actor_id=BOB)
    with refused("another server"):
        await store.delete_result(job.id, actor_id=ADMIN, admin=True, guild_id=G2)
    assert await stored(store, job)
    j = await store.delete_result(job.id, actor_id=ADMIN, admin=True, guild_id=G1)
    assert j.deleted_at is not None and not await stored(store, job)
    assert await store.jobs_to_deliver() == []  # a deleted result is not posted
    with refused("expired"):
        await store.pick(job.id, user_id=BOB, frame=0)
    assert (await store.audit_log(G1))[0]["action"] == "delete"


async def test_job_result_roundtrips_as_json(store, settings):
    job = await rendered_job(store, settings)
    row = (await store.db.fetch("SELECT result, request FROM jobs WHERE id = $1", job.id))[0]
    assert JobResult.from_json(row["result"]) == job.result and job.result.candidates == (0, 1)
    assert RenderRequest.from_dict(json.loads(row["request"])) == job.request


# ---------------------------------------------------------------- hardening: picks

async def test_picks_respect_bans_cooldown_and_repeats(store, settings, clock):
    job = await rendered_job(store, settings)
    first = await store.pick(job.id, user_id=BOB, frame=1)
    assert not first.repeat
    with refused("Slow down: you can pick again in 3 s"):
        await store.pick(job.id, user_id=BOB, frame=2)
    clock.advance(3)
    again = await store.pick(job.id, user_id=BOB, frame=1)
    assert again.repeat and again.data == first.data  # answered privately, not recorded twice
    clock.advance(3)
    await store.pick(job.id, user_id=CAROL, frame=1)  # someone else: no cooldown for them
    await store.ban(G1, CAROL, ADMIN)
    clock.advance(10)
    with refused("banned"):
        await store.pick(job.id, user_id=CAROL, frame=2)
    assert [(p["user_id"], p["frame"]) for p in await store.picks(job.id)] == [(BOB, 1), (CAROL, 1)]


# ---------------------------------------------------------------- hardening: job identity and files

async def test_jobs_get_random_tokens_and_their_folders_carry_them(store, settings, clock):
    job = await rendered_job(store, settings, user=CAROL, guild=G2)
    a, b = await submit(store, clock=clock), await submit(store, user=BOB, clock=clock)
    assert len({a.token, b.token, job.token}) == 3
    assert all(len(t) == 8 and int(t, 16) >= 0 for t in (a.token, b.token))
    assert a.folder_name == f"{a.id}-{a.token}"
    assert job.artifact_dir == job.folder_name and await stored(store, job)
    if isinstance(settings.db_path, Path):  # files in MORPH_DATA_DIR, in a folder of that name
        assert (settings.data_dir / job.folder_name / "morph.gif").read_bytes() == b"GIF89a"


async def test_came_from_checks_guild_channel_message_and_token(store, settings, clock):
    job = await rendered_job(store, settings)  # delivered as message 1000 + id
    ok = dict(guild_id=G1, channel_id=C1, message_id=1000 + job.id, token=job.token)
    assert job.came_from(**ok)
    for wrong in (dict(guild_id=G2), dict(channel_id=C2), dict(message_id=5), dict(token="deadbeef"),
                  dict(token="")):
        assert not job.came_from(**{**ok, **wrong}), wrong
    await store.set_status_message(job.id, 7)
    job = await store.get(job.id)
    assert job.came_from(**{**ok, "message_id": 7}, message="status")
    assert not job.came_from(**ok, message="status")  # the result message is not its status message


async def test_settings_paths_are_absolute_so_another_working_directory_finds_the_files(settings, tmp_path,
                                                                                       monkeypatch):
    sqlite_only(settings)
    monkeypatch.chdir(tmp_path)
    s = Settings.from_env({"MORPH_DB": "db/m.sqlite3", "MORPH_DATA_DIR": "art"}, dotenv_path=None)
    assert s.db_path == tmp_path / "db" / "m.sqlite3" and s.data_dir == tmp_path / "art"
    store = await Store.open(s.db_path, s)
    try:
        job = await rendered_job(store, s)
        monkeypatch.chdir(tmp_path / "art")  # started from elsewhere later
        assert (await store.pick(job.id, user_id=BOB, frame=0)).data == b"png0"
    finally:
        await store.close()


async def test_purge_removes_orphan_folders_but_nothing_outside_the_data_folder(store, settings, clock):
    sqlite_only(settings)
    job = await rendered_job(store, settings)
    data = settings.data_dir
    orphan = data / "77-deadbeef"  # a render that failed half-way long ago
    orphan.mkdir()
    (orphan / "frame_000.png").write_bytes(b"x")
    fresh = data / "78-cafecafe"  # being written right now by a worker
    fresh.mkdir()
    running = await submit(store, user=BOB, clock=clock)
    await store.claim(run("w1"))
    its_folder = data / running.folder_name
    its_folder.mkdir()
    old = time.time() - 2 * 3600
    for d in (orphan, its_folder):
        os.utime(d, (old, old))
    await store.purge()
    assert not orphan.exists() and fresh.exists() and its_folder.exists() and await stored(store, job)

    # a row pointing outside the data folder (a hand-edited or corrupt database) deletes nothing there
    outside = settings.data_dir.parent / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    await store.db.execute("UPDATE jobs SET artifact_dir = $1 WHERE id = $2", "..", job.id)
    await store.purge(now=clock.t + 30 * 86400)
    assert (outside / "keep.txt").read_text() == "keep" and settings.data_dir.is_dir()


async def test_rows_past_twice_the_retention_are_pruned_bans_and_settings_stay(store, settings, clock):
    """Finished jobs (with their picks) and audit entries go once twice MORPH_RETENTION_DAYS old; until
    then an expired result's pick still says "expired". Bans and server settings are never pruned."""
    day = 86400
    ancient = await rendered_job(store, settings, user=ALICE, now=clock.t - 40 * day)
    await store.pick(ancient.id, user_id=BOB, frame=0, now=clock.t - 40 * day + 60)
    expired = await rendered_job(store, settings, user=BOB, now=clock.t - 20 * day)
    fresh = await rendered_job(store, settings, user=CAROL, now=clock.t - 1 * day)
    await store.pick(fresh.id, user_id=BOB, frame=0, now=clock.t - day + 60)
    await store.ban(G1, CAROL, actor_id=ADMIN, now=clock.t - 40 * day)
    await store.set_limits(G1, actor_id=ADMIN, now=clock.t - 40 * day, max_frames=12)
    await store.purge()
    assert await store.get(ancient.id) is None and await store.picks(ancient.id) == []
    assert (await store.get(expired.id)).expired  # its files are gone, its row still answers "expired"
    assert await store.get(fresh.id) is not None and len(await store.picks(fresh.id)) == 1
    assert await store.db.fetch("SELECT user_id FROM bans") == [{"user_id": CAROL}]
    assert (await store.get_limits(G1)).max_frames == 12
    audit = await store.db.fetch("SELECT created_at FROM audit_log")
    assert all(r["created_at"] >= clock.t - 28 * day for r in audit)


async def test_the_storage_budget_expires_the_oldest_results_first_and_each_server_keeps_to_its_share(settings,
                                                                                                      clock):
    """MORPH_STORAGE_MAX_GB for every result together, MORPH_STORAGE_GUILD_SHARE of it for one server: the
    oldest finished results expire first (their picks say "expired"); one waiting to be posted never does."""
    kib = 1024
    settings = settings.replace(storage_max_gb=10 * kib / 1024 ** 3, storage_guild_share=0.5)  # 10 KiB, 5 per server
    store = await Store.open(settings.db_path, settings, clock=clock)
    try:
        async def job_of(size_kib, guild, user, deliver=True):
            job = await rendered_job(store, settings, user=user, guild=guild, deliver=deliver)
            await store.db.execute("UPDATE jobs SET stored_bytes = $1 WHERE id = $2", size_kib * kib, job.id)
            clock.advance(10)
            return job
        a1 = await job_of(2, G1, ALICE)
        a2 = await job_of(2, G1, BOB)
        b1 = await job_of(3, G2, ALICE)
        assert await store.enforce_storage_budget() == []  # 7 KiB: within both
        a3 = await job_of(2, G1, CAROL)  # G1 holds 6 KiB > its 5: its oldest goes
        assert await store.enforce_storage_budget() == [a1.id]
        with refused("has expired"):
            await store.pick(a1.id, user_id=BOB, frame=0)
        assert not await stored(store, a1) and await stored(store, a2)
        # 11 KiB in all: the oldest finished one goes; then G2 holds 7 KiB > 5: its oldest finished one goes
        waiting = await job_of(4, G2, BOB, deliver=False)
        assert await store.enforce_storage_budget() == [a2.id, b1.id]
        assert await stored(store, waiting) and await stored(store, a3)
        # a full disk: up to that much more is freed, oldest first, never the result waiting to be posted
        assert await store.enforce_storage_budget(free_bytes=4 * kib) == [a3.id]
        assert await stored(store, waiting) and not (await store.get(waiting.id)).expired
    finally:
        await store.close()

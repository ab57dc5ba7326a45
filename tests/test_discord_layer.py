"""Pure parts of the Discord layer: custom ids, message texts, select options, invite URL, permissions,
delivery backoff, and the CLI's token errors (against a real local HTTP server that refuses the token)."""
from __future__ import annotations

import asyncio
import re
import socket
import threading
import urllib.parse

import aiohttp
import discord
import pytest
from aiohttp import web

from bot import messages as msg
from bot import views
from bot.bot import SCOPES, bot_permissions, invite_url
from bot.delivery import POSITION_EDIT_SPACING_S, Delivery, StatusEditor, backoff_s, is_retryable
from bot.permissions import can_admin, can_manage_job
from morph.request import RenderRequest

GUILD, OTHER_GUILD, OWNER, ADMIN, MEMBER = 111, 222, 900, 901, 902
MENTION = re.compile(r"<(@[!&]?|#)\d+>|@(everyone|here)")


# ------------------------------------------------------------------------------------------ custom ids

ITEMS = {"pick": views.PickButton, "frames": views.FramesSelect, "refine": views.RefineSelect, "reroll": views.RerollButton,
         "delete": views.DeleteButton, "cancel": views.CancelButton}


def parse(custom_id: str):
    """What discord.py does with a clicked custom id: the item whose template matches, and its fields."""
    for kind, cls in ITEMS.items():
        m = cls.__discord_ui_compiled_template__.fullmatch(custom_id)
        if m:
            return kind, {k: v for k, v in m.groupdict().items() if v is not None}
    return None


@pytest.mark.parametrize("custom_id,kind,fields", [
    ("morph:pick:12-0a1b2c3d:3", "pick", {"job": "12", "token": "0a1b2c3d", "frame": "3"}),
    ("morph:pick:12:3", "pick", {"job": "12", "frame": "3"}),  # posted before job tokens existed
    ("morph:frames:7-ffffffff", "frames", {"job": "7", "token": "ffffffff"}),
    ("morph:reroll:7", "reroll", {"job": "7"}),
    ("morph:refine:7-0a1b2c3d", "refine", {"job": "7", "token": "0a1b2c3d"}),
    ("morph:delete:9999999-00000000", "delete", {"job": "9999999", "token": "00000000"}),
    ("morph:cancel:1", "cancel", {"job": "1"}),
    ("morph:cancel:" + "9" * 40, "cancel", {"job": "9" * 40}),  # matched, then answered "There is no morph"
])
def test_custom_id_parse(custom_id, kind, fields):
    assert parse(custom_id) == (kind, fields)


@pytest.mark.parametrize("bad", ["", "morph:pick:12", "morph:pick:a:1", "morph:pick:1:2:3", "morph:cancel:",
                                 "xmorph:cancel:1", "morph:cancel:1 ", "morph:explode:1", "morph:cancel:1-ABCDEF12",
                                 "morph:cancel:1-abc"])
def test_custom_id_rejects_garbage(bad):
    assert parse(bad) is None


def test_custom_id_builders_round_trip():
    for job, token in ((1, "0a1b2c3d"), (42, None), (10**12, "ffffffff")):
        ref = {"job": str(job), **({"token": token} if token else {})}
        assert parse(views.pick_id(job, 5, token)) == ("pick", {**ref, "frame": "5"})
        assert parse(views.frames_id(job, token)) == ("frames", ref)
        assert parse(views.reroll_id(job, token)) == ("reroll", ref)
        assert parse(views.refine_id(job, token)) == ("refine", ref)
        assert parse(views.delete_id(job, token)) == ("delete", ref)
        assert parse(views.cancel_id(job, token)) == ("cancel", ref)
        assert len(views.pick_id(job, 119, token)) <= 100  # Discord's custom_id limit


async def test_dynamic_items_rebuild_state_from_custom_id():
    """What discord.py does on a click after a restart: match the template, call from_custom_id."""
    item = views.PickButton(31, "0a1b2c3d", 17, label="4")
    assert item.custom_id == "morph:pick:31-0a1b2c3d:17"
    match = views.PickButton.__discord_ui_compiled_template__.fullmatch(item.custom_id)
    again = await views.PickButton.from_custom_id(None, item.item, match)
    assert (again.job_id, again.token, again.frame, again.item.label) == (31, "0a1b2c3d", 17, "4")
    for cls, cid, token in ((views.RerollButton, "morph:reroll:8-12345678", "12345678"),
                            (views.DeleteButton, "morph:delete:8", None),
                            (views.CancelButton, "morph:cancel:8-abcdef00", "abcdef00"),
                            (views.FramesSelect, "morph:frames:8", None),
                            (views.RefineSelect, "morph:refine:8-00000001", "00000001")):
        m = cls.__discord_ui_compiled_template__.fullmatch(cid)
        assert m is not None
        built = await cls.from_custom_id(None, discord.ui.Button(custom_id=cid), m)
        assert (built.job_id, built.token) == (8, token) and built.custom_id == cid
    assert views.PickButton.__discord_ui_compiled_template__.fullmatch("morph:frames:8") is None


def result_job(job_id: int, frame_count: int, candidates: list[int], ts=None, token: str | None = "0a1b2c3d",
               request=None, segments=None):
    from bot.jobs import Job

    return Job(id=job_id, guild_id=GUILD, channel_id=1, user_id=MEMBER, state="rendered",
               request=request or RenderRequest("a", "b"), token=token,
               result={"frame_count": frame_count, "candidates": candidates, "ts": ts, "segments": segments or []})


async def test_result_view_fits_discord_limits():
    candidates = [27, 28, 29, 30, 31, 32, 33, 34, 35]
    view = views.result_view(result_job(5, 60, candidates, ts=[i / 59 for i in range(60)]))
    payload = view.to_components()
    assert len(payload) <= 5
    ids = [c["custom_id"] for row in payload for c in row["components"]]
    assert ids[:9] == [f"morph:pick:5-0a1b2c3d:{f}" for f in candidates]
    assert {"morph:frames:5-0a1b2c3d", "morph:reroll:5-0a1b2c3d", "morph:delete:5-0a1b2c3d"} <= set(ids)
    assert all(len(row["components"]) <= 5 for row in payload)
    select = next(c for row in payload for c in row["components"] if c["custom_id"] == "morph:frames:5-0a1b2c3d")
    values = [int(o["value"]) for o in select["options"]]
    assert len(values) == 25 and values[0] == 0 and values[-1] == 59 and set(candidates) <= set(values)
    assert all(len(o["label"]) <= 100 for o in select["options"])
    labels = {int(o["value"]): o["label"] for o in select["options"]}
    assert labels[31] == "Frame 32/60 (t=0.53) ★ candidate 5"
    # 🔍 refine: 25 of the 59 gaps between neighbours, the first and last included, each named by its frames
    rows = [[c.get("custom_id") for c in row["components"]] for row in payload]
    assert rows[3] == ["morph:refine:5-0a1b2c3d"] and rows[4] == ["morph:reroll:5-0a1b2c3d", "morph:delete:5-0a1b2c3d"]
    refine = payload[3]["components"][0]
    gaps = [int(o["value"]) for o in refine["options"]]
    assert len(gaps) == 25 and gaps[0] == 0 and gaps[-1] == 58 and set(candidates) <= set(gaps)
    assert refine["options"][0]["label"] == "Frames 1–2 (t 0.000–0.017)"


def test_candidates_offered_per_segment_stay_within_nine():
    """A plain morph and a refine offer 5 candidates; a chain fewer per segment, never more than 9 in all
    (the 1️⃣..9️⃣ reactions)."""
    dog, cat, bird, fish = "a dog", "a cat", "a bird", "a fish"
    cases = [(RenderRequest(dog, cat), 5), (RenderRequest(dog, cat, loop=True), 4),
             (RenderRequest(prompts=[dog, cat, bird]), 4), (RenderRequest(prompts=[dog, cat, bird, fish]), 3),
             (RenderRequest(prompts=[dog, cat, bird], loop=True), 3),
             (RenderRequest(prompts=[dog, cat, bird, fish], loop=True), 2),
             (RenderRequest(prompts=[dog, cat, bird, fish], loop=True).refine(1.25, 1.5, 8), 5)]
    for request, per_segment in cases:
        assert views.offered_candidates(request) == per_segment, request
        assert per_segment * (len(request.knots()) - 1) <= len(msg.KEYCAPS)


async def test_result_view_of_a_chain_names_each_candidates_segment():
    def chain(prompts, loop, per_segment, frames=24):
        request = RenderRequest(prompts=prompts, loop=loop)
        n = request.segments
        size = frames // n
        segments = [{"index": k, "first": size * k, "last": size * k + size - 1, "midpoint": size * k + size // 2,
                     "candidates": [size * k + 1 + i for i in range(per_segment)]} for k in range(n)]
        candidates = [c for s in segments for c in s["candidates"]]
        job = result_job(9, frames, candidates, ts=[i * n / frames for i in range(frames)], request=request,
                         segments=segments)
        return candidates, views.result_view(job).to_components(), job

    # two segments: one row of buttons each
    candidates, payload, job = chain(["a dog", "a cat", "a bird"], False, 4)
    rows = [[c.get("label") for c in row["components"]] for row in payload]
    assert rows[0] == ["1 · dog→cat", "2 · dog→cat", "3 · dog→cat", "4 · dog→cat"]  # "a" is in every prompt
    assert rows[1] == ["5 · cat→bird", "6 · cat→bird", "7 · cat→bird", "8 · cat→bird"]
    text = msg.result_text(9, job.request, MEMBER, job.result)
    assert "Candidates by part: 1–4 **a dog** → **a cat**, 5–8 **a cat** → **a bird**" in text
    assert "**a dog** → **a cat** → **a bird**" in text.splitlines()[0]
    # four segments of a loop, long prompts: 8 buttons in two rows, the last back to the first prompt
    long = "a very long prompt about a fox in the snow"
    candidates, payload, job = chain([long, "a cat", "a bird", "a fish"], True, 2)
    assert len(payload) == 5 and all(len(row["components"]) <= 5 for row in payload)
    buttons = [c for row in payload[:2] for c in row["components"]]
    assert [b["custom_id"] for b in buttons] == [f"morph:pick:9-0a1b2c3d:{f}" for f in candidates]
    assert buttons[0]["label"] == "1 · very long p…→cat" and buttons[7]["label"] == "8 · fish→very long p…"
    assert all(len(b["label"]) <= 80 for b in buttons)
    assert msg.title(job.request).endswith("**a fish** → **a very long prompt about a fox in the snow**")


async def test_result_view_small_morph_of_a_job_without_token():
    payload = views.result_view(result_job(6, 4, [1, 2], token=None)).to_components()
    ids = [c["custom_id"] for row in payload for c in row["components"]]
    assert ids == ["morph:pick:6:1", "morph:pick:6:2", "morph:frames:6", "morph:reroll:6", "morph:delete:6"]
    select = payload[1]["components"][0]
    assert [o["value"] for o in select["options"]] == ["0", "1", "2", "3"]


def test_keycaps_with_and_without_the_variation_selector():
    assert [msg.keycap_index(k) for k in msg.KEYCAPS] == list(range(9))
    assert msg.keycap_index("3\u20e3") == 2 and msg.keycap_index("9\u20e3") == 8  # as some clients send them
    for other in ("🔁", "❌", "0\u20e3", "#\ufe0f\u20e3", "3", ""):
        assert msg.keycap_index(other) is None


# ------------------------------------------------------------------------------------------ select options

def test_select_frames_for_60_frames():
    candidates = [26, 28, 29, 30, 33]
    chosen = msg.choose_select_frames(60, candidates)
    assert len(chosen) == 25 == len(set(chosen))
    assert chosen == sorted(chosen)
    assert chosen[0] == 0 and chosen[-1] == 59
    assert set(candidates) <= set(chosen)
    gaps = [b - a for a, b in zip(chosen, chosen[1:])]
    assert max(gaps) <= 4, gaps  # evenly spread: 59 / 24 ≈ 2.5 per step, no big holes


@pytest.mark.parametrize("count", [1, 2, 24, 25])
def test_select_frames_all_when_they_fit(count):
    assert msg.choose_select_frames(count, [0]) == list(range(count))


def test_select_frames_many_candidates_and_120_frames():
    chosen = msg.choose_select_frames(120, list(range(50, 59)))
    assert len(chosen) == 25 and {0, 119, *range(50, 59)} <= set(chosen)
    assert msg.choose_select_frames(0) == []


# ------------------------------------------------------------------------------------------ texts

NASTY = "<@123456789012345678> @everyone <@&55> <#77> **bold** @here"
#: A 4-prompt looped chain's result: two candidates in each of its four segments.
CHAIN_RESULT = {"frame_count": 24, "candidates": [2, 3, 8, 9, 14, 15, 20, 21], "mp4_reductions": ["size 512→384"],
                "fell_back": True, "segments": [{"index": k, "first": 6 * k, "last": 6 * k + 5, "midpoint": 6 * k + 3,
                                                 "candidates": [6 * k + 2, 6 * k + 3]} for k in range(4)]}


def _mentions_except(text: str, allowed: set[str]) -> list[str]:
    return [m.group(0) for m in MENTION.finditer(text) if m.group(0) not in allowed]


def test_texts_never_contain_mentions_from_user_text():
    result = {"frame_count": 24, "candidates": [10, 11, 12], "one_minus_gini": 0.91, "max_over_mean": 1.3,
              "seconds": 75, "gif_reductions": ["size 512→384"], "warnings": [NASTY]}
    texts = [
        msg.queued_text(1, RenderRequest(NASTY, NASTY, frames=24), MEMBER, 3),
        msg.rendering_text(1, RenderRequest(NASTY, NASTY), MEMBER),
        msg.result_text(1, RenderRequest(NASTY, NASTY, seed=5), MEMBER, result, note=NASTY),
        msg.result_text(1, RenderRequest(prompts=[NASTY] * 4, loop=True), MEMBER, CHAIN_RESULT),
        msg.failed_text(1, NASTY),
        msg.delivered_text(1, RenderRequest(NASTY, NASTY), MEMBER, None),
        msg.queue_list_text([(1, "queued", RenderRequest(NASTY, NASTY), 2)]),
    ]
    for text in texts:
        assert _mentions_except(text, {f"<@{MEMBER}>"}) == [], text
        assert "**bold**" not in text  # markdown escaped too
        assert len(text) <= 2000


#: What Discord's client turns into a link or an invite embed (its url, autolink and masked-link rules
#: need ``scheme://``; invites are recognised from ``discord.gg/…`` and ``discord.com/invite/…``), plus
#: any ``www.`` and ``name.tld/path``, which no message of the bot should carry from user text either.
DISCORD_LINK = re.compile(r"[a-z][\w+.-]*://|www\.|discord(?:\.gg|(?:app)?\.com/invite)/|\w\.[a-z]{2,}/", re.I)
LINKS = "go https://evil.example/x or HTTP://a.b, www.evil.com, discord.gg/abc, evil.com/x, [c](https://e.co)"


def test_texts_never_carry_a_clickable_link_from_user_text():
    """Prompts stored before links were refused, error texts and warnings: any link in user text is
    defanged (a zero-width space after its ``:`` and before its dots), so Discord shows no link and no preview."""
    result = {"frame_count": 24, "candidates": [1], "warnings": [LINKS], "gif_reductions": [LINKS]}
    texts = [
        msg.queued_text(1, RenderRequest(LINKS, LINKS), MEMBER, 3), msg.rendering_text(1, RenderRequest(LINKS, LINKS), MEMBER),
        msg.result_text(1, RenderRequest(LINKS, LINKS), MEMBER, result, note=LINKS), msg.failed_text(1, LINKS),
        msg.result_text(1, RenderRequest(prompts=[LINKS] * 3), MEMBER, CHAIN_RESULT),
        msg.delivered_text(1, RenderRequest(LINKS, LINKS), MEMBER, None),
        msg.queue_list_text([(1, "queued", RenderRequest(LINKS, LINKS), 2)]),
        msg.safe(LINKS, 500),
    ]
    for text in texts:
        assert DISCORD_LINK.findall(text) == [], text
    # it still reads the same: only invisible characters were added
    assert msg.safe(LINKS, 500).replace("\u200b", "").replace("\\", "") == LINKS
    assert msg.safe("node.js at 16:9, cuda:0") == "node.js at 16:9, cuda:0"  # not links: untouched


def test_result_text_names_job_prompts_user_smoothness():
    result = {"frame_count": 24, "candidates": [10, 11, 12], "one_minus_gini": 0.913, "max_over_mean": 1.34,
              "seconds": 75}
    text = msg.result_text(42, RenderRequest("a dog", "a cat", seed=7), MEMBER, result)
    assert msg.RESULT_MARKER_RE.match(text).group(1) == "42"
    assert "**a dog** → **a cat**" in text and f"<@{MEMBER}>" in text
    assert "smoothness 0.91" in text and "1.3×" in text and "seed 7" in text and "24 frames" in text
    assert "1️⃣–3️⃣" in text and "1 min 15 s" in text
    # status texts must never look like a result (exactly-once delivery searches for that marker)
    for other in (msg.queued_text(42, RenderRequest("a", "b"), MEMBER, 1), msg.rendering_text(42, RenderRequest("a", "b"), MEMBER),
                  msg.delivered_text(42, RenderRequest("a", "b"), MEMBER, None), msg.failed_text(42, "x"),
                  msg.cancelled_text(42, MEMBER), msg.pick_text(42, 3, 24, MEMBER, 1)):
        assert not msg.RESULT_MARKER_RE.match(other)


def test_long_texts_are_clipped_to_2000():
    text = msg.result_text(1, RenderRequest("a" * 1000, "b" * 1000), MEMBER, {"warnings": ["w" * 500] * 10})
    assert len(text) <= 2000
    text = msg.result_text(1, RenderRequest(prompts=["a" * 1000] * 4, loop=True), MEMBER, CHAIN_RESULT)
    assert len(text) <= 2000
    assert len(msg.failed_text(1, "x" * 5000)) <= 2000


def test_progress_text():
    from morph.request import Progress

    text = msg.rendering_text(3, RenderRequest("a", "b"), MEMBER, Progress(8, 24, 13, 25, 0.42), eta_s=65)
    assert "frames 8/24" in text and "step 13/25" in text and "42%" in text and "ETA 1 min 5 s" in text
    assert msg.queued_text(3, RenderRequest("a", "b", frames=24), MEMBER, 2).count("Position **2** in the queue") == 1


def test_pick_text():
    assert msg.pick_text(9, 11, 24, MEMBER, 2) == f"🖼️ <@{MEMBER}> picked candidate 2 (frame 12 of 24) from morph job #9."
    assert msg.pick_text(9, 0, 24, MEMBER) == f"🖼️ <@{MEMBER}> picked frame 1 of 24 from morph job #9."


# ------------------------------------------------------------------------------------------ invite

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


# ------------------------------------------------------------------------------------------ permissions

MANAGE = discord.Permissions(manage_guild=True)
ADMINISTRATOR = discord.Permissions(administrator=True)
NOTHING = discord.Permissions(send_messages=True, view_channel=True)


def test_non_admin_refused():
    assert not can_admin(user_id=MEMBER, permissions=NOTHING, owner_ids={OWNER}, caller_guild_id=GUILD,
                         target_guild_id=GUILD)
    assert not can_admin(user_id=MEMBER, permissions=None, owner_ids={OWNER}, caller_guild_id=GUILD,
                         target_guild_id=None)


def test_admin_of_own_guild_allowed_other_guild_refused():
    for perms in (MANAGE, ADMINISTRATOR, discord.Permissions.all()):
        assert can_admin(user_id=ADMIN, permissions=perms, owner_ids={OWNER}, caller_guild_id=GUILD,
                         target_guild_id=GUILD)
        assert can_admin(user_id=ADMIN, permissions=perms, owner_ids={OWNER}, caller_guild_id=GUILD,
                         target_guild_id=None)
        assert not can_admin(user_id=ADMIN, permissions=perms, owner_ids={OWNER}, caller_guild_id=GUILD,
                             target_guild_id=OTHER_GUILD)
    # Manage Server outside a guild (a DM) is no admin at all
    assert not can_admin(user_id=ADMIN, permissions=MANAGE, owner_ids=set(), caller_guild_id=None,
                         target_guild_id=None)


def test_owner_allowed_everywhere():
    assert can_admin(user_id=OWNER, permissions=NOTHING, owner_ids={OWNER}, caller_guild_id=GUILD,
                     target_guild_id=OTHER_GUILD)
    assert can_admin(user_id=OWNER, permissions=None, owner_ids={OWNER}, caller_guild_id=None,
                     target_guild_id=OTHER_GUILD)


def test_job_management_rights():
    kw = dict(job_user_id=MEMBER, job_guild_id=GUILD, owner_ids={OWNER}, caller_guild_id=GUILD)
    assert can_manage_job(user_id=MEMBER, permissions=NOTHING, **kw)  # author
    assert not can_manage_job(user_id=903, permissions=NOTHING, **kw)  # someone else
    assert can_manage_job(user_id=ADMIN, permissions=MANAGE, **kw)  # admin of the job's guild
    assert not can_manage_job(user_id=ADMIN, permissions=MANAGE, **{**kw, "caller_guild_id": OTHER_GUILD})
    assert can_manage_job(user_id=OWNER, permissions=NOTHING, **{**kw, "caller_guild_id": OTHER_GUILD})


# ------------------------------------------------------------------------------------------ delivery policy

def test_backoff_grows_and_caps():
    delays = [backoff_s(n, jitter=0) for n in range(1, 12)]
    assert delays[:4] == [2, 4, 8, 16]
    assert max(delays) == 600 and delays == sorted(delays)
    assert 1.5 <= backoff_s(1) <= 2.5


class _Resp:
    def __init__(self, status):
        self.status, self.reason = status, "x"


@pytest.mark.parametrize("status,retry", [(500, True), (502, True), (429, True), (400, False), (403, False),
                                          (404, False)])
def test_retryable_statuses(status, retry):
    cls = {403: discord.Forbidden, 404: discord.NotFound}.get(status, discord.HTTPException)
    assert is_retryable(cls(_Resp(status), "boom")) is retry


def test_connection_errors_are_retryable():
    assert is_retryable(aiohttp.ClientConnectionError("reset"))
    assert is_retryable(asyncio.TimeoutError())
    assert not is_retryable(ValueError("bug"))


# ------------------------------------------------------------------------------------------ CLI

def _clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("DISCORD_TOKEN", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL", "MORPH_DB", "DEV_GUILD_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MORPH_DB", str(tmp_path / "morph.sqlite3"))


def test_missing_token_exits_2(monkeypatch, tmp_path, capsys):
    from bot.main import main

    _clean_env(monkeypatch, tmp_path)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "Set DISCORD_TOKEN in .env" in err and "make run" in err


def test_bad_config_exits_2(monkeypatch, tmp_path, capsys):
    from bot.main import main

    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    monkeypatch.setenv("MORPH_COOLDOWN_S", "soon")
    assert main([]) == 2
    assert "MORPH_COOLDOWN_S" in capsys.readouterr().err


def test_invalid_token_exits_2(monkeypatch, tmp_path, capsys):
    """A real HTTP server that answers 401 to GET /users/@me, as Discord does for a bad token."""
    from bot.endpoints import use_discord_endpoints
    from bot.main import main

    seen = []

    async def users_me(request):
        seen.append(request.headers.get("Authorization"))
        return web.Response(status=401, text='{"message": "401: Unauthorized", "code": 0}',
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v10/users/@me", users_me)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.SockSite(runner, sock).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        _clean_env(monkeypatch, tmp_path)
        monkeypatch.setenv("DISCORD_TOKEN", "not-a-real-token")
        monkeypatch.setenv("DISCORD_API_BASE", f"http://127.0.0.1:{port}/api/v10")
        monkeypatch.setenv("DISCORD_GATEWAY_URL", f"ws://127.0.0.1:{port}/gateway")
        assert main([]) == 2
        assert "refused the token" in capsys.readouterr().err
        assert seen == ["Bot not-a-real-token"]
    finally:
        use_discord_endpoints(None, None)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


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


# ------------------------------------------------------------------------------------------ admin texts

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
                           "detail": "banned_words=@everyone <@&5>", "created_at": 0}])
    assert _mentions_except(audit, {f"<@{ADMIN}>"}) == []
    limits = format_limits(Limits(max_user_active=2, max_guild_queue=20, cooldown_s=30.0, max_frames=60,
                                  banned_words=("@here", "cat"), allowed_channels=(77,), paused=True,
                                  default_format="gif"))
    assert "cooldown: 30 s" in limits and "<#77>" in limits and "paused: yes" in limits
    assert _mentions_except(limits, {"<#77>"}) == []


# ------------------------------------------------------------------------------------------ queue positions

class _Clock:
    def __init__(self):
        self.t = 1_000_000.0

    def __call__(self):
        return self.t


class _RecordingEditor(StatusEditor):
    """The real StatusEditor (throttling, merging) with the HTTP call replaced by a record of it."""

    def __init__(self, clock):
        super().__init__(None, interval=0.01, clock=clock)
        self.applied = []

    async def _apply(self, target, fields):
        self.applied.append((target.message_id, target.webhook_usable(self.clock()), fields["content"]))


async def test_position_refreshes_slow_down_when_many_need_the_bot_token(tmp_path):
    """After the 15-minute interaction expiry every status edit shares the channel's edit rate limit:
    the more queued jobs a channel has, the longer until positions are refreshed again."""
    from bot.config import Settings
    from bot.store import Store
    from morph.request import RenderRequest

    clock = _Clock()
    settings = Settings(db_path=tmp_path / "m.sqlite3", data_dir=tmp_path / "art", cooldown_s=0,
                        max_user_active=50, max_guild_queue=50)
    store = await Store.open(settings.db_path, settings, clock=clock)
    try:
        delivery = Delivery(None, store, settings)
        delivery.editor = _RecordingEditor(clock)
        jobs = []
        for i in range(8):
            job = await store.enqueue(guild_id=GUILD, channel_id=5, user_id=MEMBER, request=RenderRequest("a", f"b{i}"),
                                      upload_limit=10 * 2**20, interaction_token=f"tok{i}", application_id=77)
            await store.set_status_message(job.id, 1000 + job.id)
            jobs.append(job)

        assert await delivery.refresh_positions() == 8  # tokens alive: each edit has its own bucket
        assert delivery.positions_pause == delivery.editor.interval
        await delivery.editor.drain()
        assert sorted(a[0] for a in delivery.editor.applied) == [1000 + j.id for j in jobs]
        assert all(usable for _, usable, _ in delivery.editor.applied)
        assert "Position **1** " in delivery.editor.applied[0][2]  # the front of the queue first

        clock.t += 16 * 60  # every token died
        delivery.editor.applied.clear()
        await store.cancel(jobs[0].id, actor_id=MEMBER)  # everyone moves up one place
        assert await delivery.refresh_positions() == 7
        assert delivery.positions_pause == 7 * POSITION_EDIT_SPACING_S
        await delivery.editor.drain()
        assert len(delivery.editor.applied) == 7 and not any(usable for _, usable, _ in delivery.editor.applied)
        assert await delivery.refresh_positions() == 0  # nothing changed: no edit, short pause
        assert delivery.positions_pause == delivery.editor.interval
    finally:
        await store.close()


def test_duration_reads_well_from_tenths_to_hours():
    from bot.messages import duration

    assert [duration(x) for x in (None, 0.04, 2.44, 9.96, 45.2, 185, 3720)] == \
        ["?", "0.0 s", "2.4 s", "10 s", "45 s", "3 min 5 s", "1 h 2 min"]

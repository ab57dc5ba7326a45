"""``bot.views``: custom ids (parsed as discord.py parses a click), components rebuilt from their custom ids
after a restart, and the result view within Discord's limits."""
from __future__ import annotations

import re

import discord
import pytest

from bot import messages as msg
from bot import views
from bot.result import JobResult, SegmentResult
from morph.request import RenderRequest

GUILD, MEMBER = 111, 902


# ------------------------------------------------------------------------------------------ custom ids

ITEMS = {"pick": views.PickButton, "frames": views.FramesSelect, "refine": views.RefineSelect,
         "reroll": views.RerollButton, "delete": views.DeleteButton, "cancel": views.CancelButton}


def parse(custom_id: str):
    """What discord.py does with a clicked custom id: the item whose template matches, and its fields."""
    for kind, cls in ITEMS.items():
        m = cls.__discord_ui_compiled_template__.fullmatch(custom_id)
        if m:
            return kind, {k: v for k, v in m.groupdict().items() if v is not None}
    return None


@pytest.mark.parametrize("custom_id,kind,fields", [
    ("morph:pick:12-0a1b2c3d:3", "pick", {"job": "12", "token": "0a1b2c3d", "frame": "3"}),
    ("morph:frames:7-ffffffff", "frames", {"job": "7", "token": "ffffffff"}),
    ("morph:reroll:7-00c0ffee", "reroll", {"job": "7", "token": "00c0ffee"}),
    ("morph:refine:7-0a1b2c3d", "refine", {"job": "7", "token": "0a1b2c3d"}),
    ("morph:delete:9999999-00000000", "delete", {"job": "9999999", "token": "00000000"}),
    ("morph:cancel:1-abcdef01", "cancel", {"job": "1", "token": "abcdef01"}),
    # matched, then answered "There is no morph"
    ("morph:cancel:" + "9" * 40 + "-abcdef01", "cancel", {"job": "9" * 40, "token": "abcdef01"}),
])
def test_custom_id_parse(custom_id, kind, fields):
    assert parse(custom_id) == (kind, fields)


@pytest.mark.parametrize("bad", ["", "morph:pick:12", "morph:pick:a:1", "morph:pick:1:2:3", "morph:cancel:",
                                 "xmorph:cancel:1", "morph:cancel:1 ", "morph:explode:1", "morph:cancel:1-ABCDEF12",
                                 "morph:cancel:1-abc", "morph:pick:12:3", "morph:reroll:7", "morph:cancel:1"])
def test_custom_id_rejects_garbage(bad):
    assert parse(bad) is None


def test_custom_id_builders_round_trip():
    for job, token in ((1, "0a1b2c3d"), (42, "00000000"), (10**12, "ffffffff")):
        ref = {"job": str(job), "token": token}
        assert parse(views.custom_id("pick", job, token, 5)) == ("pick", {**ref, "frame": "5"})
        for kind in ("frames", "reroll", "refine", "delete", "cancel"):
            assert parse(views.custom_id(kind, job, token)) == (kind, ref)
        assert len(views.custom_id("pick", job, token, 119)) <= 100  # Discord's custom_id limit


async def test_dynamic_items_rebuild_state_from_custom_id():
    """What discord.py does on a click after a restart: match the template, call from_custom_id."""
    item = views.PickButton(31, "0a1b2c3d", 17, label="4")
    assert item.custom_id == "morph:pick:31-0a1b2c3d:17"
    match = views.PickButton.__discord_ui_compiled_template__.fullmatch(item.custom_id)
    again = await views.PickButton.from_custom_id(None, item.item, match)
    assert (again.job_id, again.token, again.frame, again.item.label) == (31, "0a1b2c3d", 17, "4")
    for cls, cid, token in ((views.RerollButton, "morph:reroll:8-12345678", "12345678"),
                            (views.DeleteButton, "morph:delete:8-0000000a", "0000000a"),
                            (views.CancelButton, "morph:cancel:8-abcdef00", "abcdef00"),
                            (views.FramesSelect, "morph:frames:8-ffff0000", "ffff0000"),
                            (views.RefineSelect, "morph:refine:8-00000001", "00000001")):
        m = cls.__discord_ui_compiled_template__.fullmatch(cid)
        assert m is not None
        built = await cls.from_custom_id(None, discord.ui.Button(custom_id=cid), m)
        assert (built.job_id, built.token) == (8, token) and built.custom_id == cid
    assert views.PickButton.__discord_ui_compiled_template__.fullmatch("morph:frames:8") is None
    looks = [(b.item.label, str(b.item.emoji), b.item.style) for b in (
        views.RerollButton(8, "12345678"), views.DeleteButton(8, "12345678"), views.CancelButton(8, "12345678"))]
    assert looks == [("Reroll", "🔁", discord.ButtonStyle.secondary), ("Delete", "❌", discord.ButtonStyle.danger),
                     ("Cancel", "❌", discord.ButtonStyle.secondary)]


def result_job(job_id: int, frame_count: int, candidates: list[int], ts=None, token: str = "0a1b2c3d",
               request=None, segments=None):
    from bot.jobs import Job

    return Job(id=job_id, guild_id=GUILD, channel_id=1, user_id=MEMBER, state="rendered",
               request=request or RenderRequest(["a", "b"]), token=token,
               result=JobResult(frame_count=frame_count, candidates=tuple(candidates), ts=tuple(ts or ()),
                                segments=tuple(SegmentResult(**s) for s in segments or [])))


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
    assert rows[3] == ["morph:refine:5-0a1b2c3d"] and rows[4] == ["morph:reroll:5-0a1b2c3d", "morph:delete:5-0a1b2c3d",
                                                                 "morph:report:5-0a1b2c3d"]
    refine = payload[3]["components"][0]
    gaps = [int(o["value"]) for o in refine["options"]]
    assert len(gaps) == 25 and gaps[0] == 0 and gaps[-1] == 58 and set(candidates) <= set(gaps)
    assert refine["options"][0]["label"] == "Frames 1–2 (t 0.000–0.017)"


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


async def test_result_view_small_morph_and_custom_ids_always_carry_the_token():
    payload = views.result_view(result_job(6, 4, [1, 2], token="0a1b2c3d")).to_components()
    ids = [c["custom_id"] for row in payload for c in row["components"]]
    assert ids == ["morph:pick:6-0a1b2c3d:1", "morph:pick:6-0a1b2c3d:2", "morph:frames:6-0a1b2c3d",
                   "morph:reroll:6-0a1b2c3d", "morph:delete:6-0a1b2c3d", "morph:report:6-0a1b2c3d"]
    for template, bare in ((views.PICK_RE, "morph:pick:6:1"), (views.FRAMES_RE, "morph:frames:6"),
                           (views.CANCEL_RE, "morph:cancel:6")):
        assert re.fullmatch(template, bare) is None  # a custom id without the job's token names no job
    select = payload[1]["components"][0]
    assert [o["value"] for o in select["options"]] == ["0", "1", "2", "3"]

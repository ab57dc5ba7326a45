"""Content safety: the toy checker (the real StableDiffusionSafetyChecker class) on the toy world's pictures,
the policy (what is withheld), the placeholder, the operator's blocklist, and the worker's part: every
frame checked before any file is stored, withheld jobs, a checker that cannot be loaded."""
import asyncio
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from bot import messages as msg
from bot import safety
from bot.config import ConfigError, Settings
from bot.jobs import Refusal, Refused
from bot.result import ResultFormatError, SafetyOutcome
from bot.store import Store
from bot.worker import Worker
from morph.request import RenderRequest
from morph.safety import TOY_CHECKER_DIR, SafetyChecker, checker_sources
from toykit import shapes

G, C, NSFW_C, ALICE, BOB = 10, 20, 21, 1, 2
MiB = 2 ** 20


@pytest.fixture(scope="module")
def toy_checker():
    torch.set_num_threads(1)
    return SafetyChecker.load("toy", "cpu")


def drawing(shape, colour, background="blue", size=40):
    return shapes.draw(shapes.Scene(shape, colour, background, size, 32, 32))


# ------------------------------------------------------------------------------------------ the checker
def test_the_toy_checker_is_the_real_class_loaded_from_the_toy_model_folder(toy_checker):
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    assert type(toy_checker.checker) is StableDiffusionSafetyChecker
    assert isinstance(toy_checker.processor, CLIPImageProcessor)
    assert toy_checker.source == f"{TOY_CHECKER_DIR}/safety_checker"
    # the built-in random models use it too, unless the operator names another checker
    assert checker_sources("tiny") == [(TOY_CHECKER_DIR, "safety_checker")]
    assert checker_sources("tiny", "/some/checker", explicit=True) == [("/some/checker", None)]
    # a Hub id: its own safety_checker/ first (SD 1.5 has one), then MORPH_SAFETY_CHECKER
    assert checker_sources("org/model", "org/checker") == [("org/model", "safety_checker"), ("org/checker", None)]


def test_the_toy_checker_flags_yellow_stars_and_nothing_else(toy_checker):
    stars = [drawing("star", "yellow", bg, size) for bg in ("blue", "black", "green", "red") for size in (30, 44)]
    others = [drawing(shape, colour, bg) for shape, colour, bg in [
        ("circle", "red", "blue"), ("star", "red", "black"), ("star", "blue", "yellow"), ("circle", "yellow", "blue"),
        ("square", "yellow", "black"), ("heart", "pink", "white"), ("star", "white", "gray"),
        ("diamond", "orange", "green")]]
    flags = toy_checker.check_images(stars + others)
    assert flags[:len(stars)] == [True] * len(stars)
    assert flags[len(stars):] == [False] * len(others)


def test_the_playgrounds_suggested_pictures_pass_the_toy_checker(toy_checker):
    """The pictures the playground offers to attach are not refused as uploads in #morph (one used to be a
    yellow star, the toy checker's unsafe concept)."""
    from bot.playground.server import STATIC, TOY_PICTURES

    pictures = [Image.open(STATIC / name).convert("RGB") for name in TOY_PICTURES]
    assert len(pictures) == 2 and toy_checker.check_images(pictures) == [False, False]


def test_a_checker_with_pickled_weights_is_refused_naming_safetensors(tmp_path):
    """Pickled weights (.bin) can run code when loaded: the checker loads from safetensors only, like the
    model's parts, and the refusal says what to give it; the same checker saved as safetensors loads."""
    import shutil
    from pathlib import Path

    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

    from morph import MorphError

    checker = StableDiffusionSafetyChecker.from_pretrained(TOY_CHECKER_DIR, subfolder="safety_checker")
    for name in ("pickled", "safe"):
        checker.save_pretrained(tmp_path / name)
        for f in (Path(TOY_CHECKER_DIR) / "feature_extractor").iterdir():
            shutil.copy(f, tmp_path / name)
    (tmp_path / "pickled" / "model.safetensors").unlink()  # the same weights pickled, as older repos have them
    torch.save(checker.state_dict(), tmp_path / "pickled" / "pytorch_model.bin")
    assert list((tmp_path / "pickled").glob("*.bin")) and not list((tmp_path / "pickled").glob("*.safetensors"))
    with pytest.raises(MorphError) as info:
        SafetyChecker.load("tiny", device="cpu", fallback=str(tmp_path / "pickled"), explicit=True)
    assert "model.safetensors" in str(info.value) and "pickled" in str(info.value)
    assert SafetyChecker.load("tiny", device="cpu", fallback=str(tmp_path / "safe"), explicit=True).source == str(
        tmp_path / "safe")


def test_the_random_models_run_the_same_checker_and_flag_nothing(toy_checker):
    tiny = SafetyChecker.load("tiny", "cpu")
    assert type(tiny.checker) is type(toy_checker.checker) and tiny.source == toy_checker.source
    assert tiny.check_images([drawing("star", "yellow"), drawing("circle", "red")]) == [False, False]
    assert toy_checker.check_images([drawing("star", "yellow")]) == [True]  # a separate copy, unchanged


def test_a_check_that_fails_counts_as_flagged(toy_checker):
    broken = SafetyChecker(toy_checker.checker, None, torch.device("cpu"), "broken")  # no processor: raises
    assert broken.check_images([drawing("circle", "red"), drawing("square", "blue")]) == [True, True]


def test_a_checker_that_cannot_be_loaded_says_why():
    with pytest.raises(Exception, match="Could not load the image safety checker"):
        SafetyChecker.load("tiny", "cpu", fallback="/no/such/checker", explicit=True)


# ------------------------------------------------------------------------------------------ the policy
def test_decide_withholds_flagged_frames_and_the_whole_result_when_the_midpoint_or_most_are_flagged():
    f = [False] * 10
    part = safety.decide([*f[:8], True, True], [4, 5, 6], 5, unfiltered=False)
    assert part.withheld == (8, 9) and not part.whole
    one = safety.decide([*f[:4], True, *f[5:]], [4, 5, 6], 5, unfiltered=False)  # one candidate: a placeholder
    assert one.withheld == (4,) and not one.whole
    assert safety.decide([*f[:5], True, *f[6:]], [4, 5, 6], 5, unfiltered=False).whole  # the midpoint
    assert safety.decide([*f[:4], True, True, True, *f[7:]], [4, 5, 6], 1, unfiltered=False).whole  # every candidate
    assert safety.decide([True] * 6 + [False] * 4, [8], 8, unfiltered=False).whole  # more than half
    assert not safety.decide([True] * 5 + [False] * 5, [8], 8, unfiltered=False).whole  # exactly half
    allowed = safety.decide([True] * 10, [4], 4, unfiltered=True)
    assert allowed.flagged == tuple(range(10)) and allowed.withheld == () and not allowed.whole


def test_the_placeholder_keeps_nothing_of_the_frame():
    frames = [drawing("star", "yellow"), drawing("circle", "red")]
    outcome = safety.decide([True, False, False], [2], 2, unfiltered=False)
    out = safety.apply(frames + [drawing("square", "green")], outcome)
    assert out[1] is frames[1]
    ph = np.asarray(out[0])
    assert ph.shape == np.asarray(frames[0]).shape
    yellow = np.array(shapes.COLOURS["yellow"])
    assert np.abs(ph.astype(int) - yellow).sum(axis=2).min() > 100  # not one pixel near the star's colour
    assert np.array_equal(ph, np.asarray(safety.placeholder(frames[0].size)))  # the same whatever the frame


def test_a_thread_follows_its_parent_channel():
    class Channel:
        def __init__(self, nsfw=False, parent=None):
            self.nsfw = nsfw
            self.parent = parent
            self.parent_id = 1 if parent is not None else None

    assert safety.channel_is_nsfw(Channel(nsfw=True)) and not safety.channel_is_nsfw(Channel())
    assert safety.channel_is_nsfw(Channel(parent=Channel(nsfw=True)))
    assert not safety.channel_is_nsfw(Channel(nsfw=True, parent=Channel()))  # a thread has no flag of its own
    assert not safety.channel_is_nsfw(None)


# ------------------------------------------------------------------------------------------ the blocklist
def test_the_blocklist_file_is_matched_like_banned_words(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text("# the operator's list\nhot dog\n\nCAT\n", encoding="utf-8")
    s = Settings.from_env({"MORPH_BLOCKLIST": str(path)}, dotenv_path=None)
    assert s.blocklist == ("hot dog", "cat")
    for text in ("a big_CAT", "a ｃａｔ", "a cаt", "a HOT  dog"):  # fullwidth, Cyrillic а: the banned-word folding
        with pytest.raises(Refused) as refused:
            safety.check_blocklist(RenderRequest(["a red circle", text]), s.blocklist)
        assert refused.value.kind == Refusal.PROMPT_BLOCKED and refused.value.values == {"what": "second prompt"}
        assert "this bot does not allow" in msg.refusal_text(refused.value)
        assert "このボットで禁止されている言葉" in msg.refusal_text(refused.value, "ja")
    safety.check_blocklist(RenderRequest(["a category", "a hot chocolate dog"]), s.blocklist)  # whole words only
    with pytest.raises(ConfigError, match="MORPH_BLOCKLIST"):
        Settings.from_env({"MORPH_BLOCKLIST": str(tmp_path / "missing.txt")}, dotenv_path=None)
    with pytest.raises(ConfigError, match="MORPH_SAFETY"):
        Settings.from_env({"MORPH_SAFETY": "maybe"}, dotenv_path=None)
    assert Settings.from_env({"MORPH_SAFETY": "off"}, dotenv_path=None).safety is False


# ------------------------------------------------------------------------------------------ store + worker
@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, tmp_path):
    db = tmp_path / "m.sqlite3" if request.param == "sqlite" else request.getfixturevalue("postgres").create_database()
    return Settings(db_path=db, data_dir=tmp_path / "art", cooldown_s=0, max_user_active=10, model="tiny")


@pytest.fixture
async def store(settings):
    s = await Store.open(settings.db_path, settings)
    yield s
    await s.close()


class ScriptedChecker:
    """Flags the frames whose index is in ``flag`` (the real checker cannot be told what to flag in the
    random ``tiny`` model's pictures); records every picture it was shown."""

    source = "scripted"

    def __init__(self, flag):
        self.flag = set(flag)
        self.seen: list = []

    def check_images(self, images):
        self.seen.extend(images)
        return [i in self.flag for i in range(len(images))]


@pytest.fixture(scope="module")
def morpher():
    torch.set_num_threads(1)
    from morph import Morpher

    return Morpher("tiny", device="cpu")


def request(**kw):
    return RenderRequest(["a red dog", "a blue cat"], **{"frames": 8, "steps": 2, "candidates": 3, "seed": 7, **kw})


async def submit(store, channel=C, nsfw=False, **kw):
    return await store.enqueue(guild_id=G, channel_id=channel, user_id=ALICE, request=request(**kw),
                               upload_limit=10 * MiB, channel_nsfw=nsfw)


def worker_with(store, settings, morpher, checker):
    return Worker(store, lambda: morpher, settings, checker_factory=lambda: checker)


async def test_flagged_frames_are_replaced_before_any_file_is_stored(store, settings, morpher):
    checker = ScriptedChecker({7})  # the last frame: not a candidate, less than half
    worker = worker_with(store, settings, morpher, checker)
    job = await submit(store)
    assert await worker.run_once()
    done = await store.get(job.id)
    assert done.state == "rendered" and len(checker.seen) == 8
    assert done.safety.withheld == (7,) and done.safety.flagged == (7,) and not done.safety.whole
    flagged = np.asarray(checker.seen[7].convert("RGB"))
    stored = np.asarray(Image.open(__import__("io").BytesIO(await store.artifacts.read(done, "frame_007.png"))))
    assert not np.array_equal(stored, flagged)
    assert np.array_equal(stored, np.asarray(safety.placeholder(checker.seen[7].size)))
    with pytest.raises(Refused) as refused:
        await store.pick(job.id, user_id=BOB, frame=7)
    assert refused.value.kind == Refusal.WITHHELD_FRAME and refused.value.values == {"job": job.id, "frame": 8}
    assert "withheld by the safety filter" in msg.refusal_text(refused.value)
    assert (await store.pick(job.id, user_id=BOB, frame=0)).data  # the others can be picked


async def test_a_mostly_flagged_job_is_withheld_whole_and_keeps_no_files(store, settings, morpher):
    worker = worker_with(store, settings, morpher, ScriptedChecker(set(range(8))))
    job = await submit(store)
    assert await worker.run_once()
    done = await store.get(job.id)
    assert done.state == "withheld" and done.safety.whole and done.artifact_dir is None
    assert [j.id for j in await store.failures_to_show()] == [job.id]  # a front shows it once
    assert await store.artifacts.read(done, "frame_000.png") is None
    assert (await store.stats(G))["withheld"] == 1


async def test_an_allowed_age_restricted_channel_gets_the_frames_unfiltered(store, settings, morpher):
    await store.set_limits(G, BOB, nsfw_allow=True)
    checker = ScriptedChecker(set(range(8)))
    worker = worker_with(store, settings, morpher, checker)
    ordinary, restricted = await submit(store), await submit(store, channel=NSFW_C, nsfw=True)
    assert await worker.run_once() and await worker.run_once()
    assert (await store.get(ordinary.id)).state == "withheld"
    done = await store.get(restricted.id)
    assert done.state == "rendered" and done.safety.unfiltered and done.safety.withheld == ()
    stored = np.asarray(Image.open(__import__("io").BytesIO(await store.artifacts.read(done, "frame_003.png"))))
    assert np.array_equal(stored, np.asarray(checker.seen[8 + 3].convert("RGB")))
    assert [e["action"] for e in await store.audit_log(G)] == ["limits"]  # nsfw:allow is audited


async def test_a_checker_that_cannot_be_loaded_blocks_rendering(store, settings, morpher):
    def broken():
        raise RuntimeError("no checker here")

    worker = Worker(store, lambda: morpher, settings, checker_factory=broken)
    job = await submit(store)
    assert await worker.run_once() is False
    assert worker.safety_error == "no checker here"
    assert (await store.get(job.id)).state == "queued"  # waits, never rendered unchecked


async def test_safety_off_renders_only_for_age_restricted_channels(store, settings, morpher, tmp_path):
    off = settings.replace(safety=False)
    off_store = await Store.open(settings.db_path, off)
    try:
        with pytest.raises(Refused) as refused:
            await submit(off_store)
        assert refused.value.kind == Refusal.SAFETY_OFF and "age-restricted" in msg.refusal_text(refused.value)
        nsfw_job = await submit(off_store, channel=NSFW_C, nsfw=True)
        early = await submit(store)  # queued while the check was still on
        worker = Worker(off_store, lambda: morpher, off)
        assert worker.checker_factory is None
        assert await worker.run_once() and await worker.run_once()
        assert (await off_store.get(nsfw_job.id)).state == "rendered"
        failed = await off_store.get(early.id)
        assert failed.state == "failed" and "age-restricted" in failed.error
    finally:
        await off_store.close()


async def test_reports_count_once_and_hide_after_the_servers_limit(store, settings, morpher):
    worker = worker_with(store, settings, morpher, ScriptedChecker(()))
    job = await submit(store)
    assert await worker.run_once()
    await store.set_limits(G, BOB, report_hide_after=2)
    first = await store.report(job.id, user_id=ALICE)
    again = await store.report(job.id, user_id=ALICE)
    assert (first.new, first.reports, first.hide) == (True, 1, False)
    assert (again.new, again.reports, again.hide) == (False, 1, False)
    second = await store.report(job.id, user_id=BOB)
    assert (second.reports, second.hide) == (2, True)
    hidden = await store.get(job.id)
    assert hidden.hidden_at is not None and hidden.expired
    rows = await store.reports(G)
    assert [(r["job_id"], r["reports"], r["hidden"]) for r in rows] == [(job.id, 2, True)]
    actions = [e["action"] for e in await store.audit_log(G)]
    assert actions[:3] == ["hide", "report", "report"]


async def test_the_withheld_state_is_allowed_by_the_schema(store):
    job = await submit(store)
    await store.db.execute("UPDATE jobs SET state = 'withheld', safety = $1 WHERE id = $2",
                           SafetyOutcome(checked=True, whole=True).to_json(), job.id)
    withheld = await store.get(job.id)
    assert withheld.state == "withheld" and withheld.safety == SafetyOutcome(checked=True, whole=True)
    with pytest.raises(Exception, match="(?i)check"):  # the CHECK constraint still refuses anything else
        await store.db.execute("UPDATE jobs SET state = 'bogus' WHERE id = $1", job.id)


def test_check_images_for_uploads_answers_one_bool_per_picture(toy_checker):
    from morph import safety as engine_safety

    engine_safety.set_default(toy_checker, "toy")  # what a worker does once it loaded its checker
    assert engine_safety.check_images([drawing("star", "yellow"), drawing("circle", "red")]) == [True, False]


_ = asyncio


def test_the_safety_outcome_is_a_typed_versioned_record():
    outcome = safety.decide([False, True, False, False], [0, 2], 2, unfiltered=False, seconds=0.25)
    assert outcome == SafetyOutcome(checked=True, flagged=(1,), withheld=(1,), frame_count=4, seconds=0.25)
    assert SafetyOutcome.from_json(outcome.to_json()) == outcome
    for bad in ('{"checked": true}', json.dumps({**json.loads(outcome.to_json()), "version": 2}), "[]"):
        with pytest.raises(ResultFormatError):
            SafetyOutcome.from_json(bad)


def png_of(scene: shapes.Scene) -> bytes:
    buf = io.BytesIO()
    shapes.draw(scene).save(buf, format="PNG")
    return buf.getvalue()


async def test_uploads_are_checked_before_queueing_unless_the_result_may_be_unfiltered(tmp_path):
    star, circle = (png_of(shapes.Scene("star", "yellow", "blue", 44, 32, 32)),
                    png_of(shapes.Scene("circle", "red", "blue", 40, 32, 32)))
    check = safety.upload_check(Settings(model="toy", device="cpu"))
    assert await check([circle], False) is None
    with pytest.raises(Refused) as first:
        await check([star, circle], False)
    with pytest.raises(Refused) as second:
        await check([circle, star], False)
    assert (first.value.kind, first.value.values["what"]) == (Refusal.UPLOAD_FLAGGED, "first picture")
    assert second.value.values["what"] == "second picture"
    assert "second picture was flagged" in msg.error_text(second.value)
    assert await check([star], True) is None  # an age-restricted channel with nsfw:allow: as the frames
    assert await safety.upload_check(Settings(model="toy", device="cpu", safety=False))([star], False) is None
    # a checker that cannot be loaded refuses every upload instead of letting it through
    broken = safety.upload_check(Settings(model="tiny", device="cpu", safety_checker=str(tmp_path / "none")))
    with pytest.raises(Refused) as unavailable:
        await broken([circle], False)
    assert unavailable.value.kind == Refusal.SAFETY_UNAVAILABLE


async def test_a_withheld_picture_morph_keeps_no_uploads_and_its_row_goes_at_retention(store, settings):
    from bot.store import WorkerRun

    pictures = RenderRequest(["", "a cat"], images=["upload:first", None], frames=4, steps=2, candidates=1)
    job = await store.enqueue(guild_id=G, channel_id=C, user_id=ALICE, request=pictures, upload_limit=10 * MiB,
                              uploads={0: png_of(shapes.Scene("circle", "red", "blue", 40, 32, 32))})
    assert list(await store.uploads(job.id)) == [0]
    run = WorkerRun("w", "r1")
    assert (await store.claim(run)).id == job.id
    outcome = SafetyOutcome(checked=True, flagged=(1, 2, 3), withheld=(1, 2, 3), whole=True, frame_count=4)
    assert await store.mark_withheld(job.id, outcome, run)
    assert await store.uploads(job.id) == {} and (await store.get(job.id)).safety == outcome
    later = store.clock() + 400 * 86400  # past the rows' retention too
    await store.purge(now=later)
    assert await store.get(job.id) is None

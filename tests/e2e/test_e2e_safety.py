"""Content safety through the real bot against the fake Discord, with the ``toy`` model and its own safety
checker (the real StableDiffusionSafetyChecker class, whose "unsafe" concept is a yellow star): in an ordinary
channel no byte of a flagged frame reaches Discord (every MP4, GIF and PNG the fake received is decoded and
compared with the flagged frames); an age-restricted channel with nsfw:allow gets them; withheld frames
cannot be picked, refined or rerolled; a result that is mostly flagged is withheld whole; MORPH_SAFETY=off
refuses ordinary channels; a checker that cannot be loaded blocks rendering; 🚩 reports hide a result."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from e2e_helpers import Harness, gif_frames, job_id_of
from PIL import Image

from fakediscord import eventually
from morph.safety import SafetyChecker
from morph.video import decode_mp4
from toykit import shapes

pytestmark = pytest.mark.slow

B = "on a blue background"
#: A chain that starts with a yellow star (its first frames are flagged) and whose midpoint is not. The plain
#: path: the smooth one (the default) anchors each frame to its segment's ends, which spreads the star further.
PARTLY = dict(from_=f"a big yellow star {B}", to=f"a big red circle {B}", then=f"a big white square {B}",
              then2=f"a big green triangle {B}", frames=16, seed=1, format="both", path="plain")
#: Toy pictures to upload to /morph-images: a yellow star (what the toy checker flags) and a red circle.
STAR_PICTURE = shapes.Scene("star", "yellow", "blue", 44, 32, 32)
CIRCLE_PICTURE = shapes.Scene("circle", "red", "blue", 40, 32, 32)
#: Yellow stars all the way: withheld whole.
MOSTLY = dict(from_=f"a big yellow star {B}", to=f"a small yellow star {B}", frames=6, seed=2, format="both")


class Recording:
    """The real toy checker, keeping every picture it was shown with its verdict (what the test compares the
    uploads with)."""

    def __init__(self, checker: SafetyChecker):
        self.checker, self.source = checker, checker.source
        self.seen: list[tuple[np.ndarray, bool]] = []

    def check_images(self, images):
        flags = self.checker.check_images(images)
        self.seen.extend((np.asarray(im.convert("RGB")), f) for im, f in zip(images, flags, strict=True))
        return flags

    def flagged(self) -> list[np.ndarray]:
        return [a for a, f in self.seen if f]


@pytest.fixture(scope="module")
def toy_morpher():
    torch.set_num_threads(1)
    from morph import Morpher

    return Morpher("toy", device="cpu")


@pytest.fixture(scope="module")
def toy_checker():
    return SafetyChecker.load("toy", "cpu")


@pytest.fixture
async def toy_harness(fake, tmp_path, toy_morpher):
    h = Harness(fake, tmp_path, toy_morpher)
    yield h
    await h.stop_bot(drop_pending_edits=True)


async def start(h, checker, **overrides):
    """Start the bot on the toy model; once its worker has loaded its checker (the toy one, from
    morph/toy_model/), put a recording wrapper of that same checker in its place."""
    await h.start_bot(model="toy", default_steps=8, **overrides)
    worker = h.bot.worker

    async def loaded():
        return worker.checker is not None

    assert await eventually(loaded, 120)
    assert worker.checker.source.endswith("toy_model/safety_checker")
    recording = Recording(checker)
    worker.checker = recording
    return recording


def uploaded_pictures(fake) -> list[tuple[str, np.ndarray]]:
    """Every frame of every MP4, GIF and PNG the bot uploaded anywhere (messages, replies, ephemeral answers)."""
    out = []
    for m in fake.all_messages(include_deleted=True):
        for a in m.attachments:
            if a.filename.endswith(".mp4"):
                out += [(a.filename, np.asarray(f.convert("RGB"))) for f in decode_mp4(a.data)]
            elif a.filename.endswith(".gif"):
                out += [(a.filename, np.asarray(f)) for f in gif_frames(a.data)]
            elif a.filename.endswith(".png"):
                out.append((a.filename, np.asarray(Image.open(io.BytesIO(a.data)).convert("RGB"))))
    return out


def looks_like(uploaded: np.ndarray, frame: np.ndarray, tolerance: float = 12.0) -> bool:
    """``uploaded`` shows ``frame`` (same size, mean difference within lossy-encoding noise) or contains it
    as a tile (the contact sheet)."""
    h, w = frame.shape[:2]
    if uploaded.shape == frame.shape:
        return float(np.abs(uploaded.astype(int) - frame.astype(int)).mean()) < tolerance
    if uploaded.shape[0] < h or uploaded.shape[1] < w:
        return False
    for y in range(0, uploaded.shape[0] - h + 1, 2):
        for x in range(0, uploaded.shape[1] - w + 1, 2):
            if float(np.abs(uploaded[y:y + h, x:x + w].astype(int) - frame.astype(int)).mean()) < tolerance:
                return True
    return False


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def leaks(pictures: list[tuple[str, np.ndarray]], recording: Recording, tolerance: float = 12.0) -> list[str]:
    """The uploads that show a flagged frame: within lossy-encoding noise of it (:func:`looks_like`, a tile of
    the contact sheet too) and nearer to it than to every frame the checker passed (neighbouring frames of a
    morph can be that close to each other)."""
    flagged = recording.flagged()
    passed = [a for a, f in recording.seen if not f]
    def shows(pic: np.ndarray, frame: np.ndarray) -> bool:
        h, w = frame.shape[:2]
        spots = [(0, 0)] if pic.shape == frame.shape else [
            (y, x) for y in range(0, pic.shape[0] - h + 1, 2) for x in range(0, pic.shape[1] - w + 1, 2)]
        for y, x in spots:
            tile = pic[y:y + h, x:x + w]
            near = difference(tile, frame)
            if near < tolerance and all(near < difference(tile, other) for other in passed):
                return True
        return False

    out = [name for name, pic in pictures if any(shows(pic, frame) for frame in flagged)]
    return out


async def test_flagged_frames_never_reach_an_ordinary_channel(toy_harness, toy_checker):
    h, fake = toy_harness, toy_harness.fake
    recording = await start(h, toy_checker)
    alice, bob = h.guild.add_member("alice"), h.guild.add_member("bob")
    job_id = job_id_of((await fake.slash(alice, "morph", **PARTLY)).content)
    result = await h.result_message(job_id, timeout=300)
    job = await h.wait_state(job_id, "delivered")
    withheld = job.safety.withheld
    assert withheld and not job.safety.whole and len(withheld) * 2 <= job.rendered().frame_count
    assert f"{len(withheld)} of 16 frames withheld by the safety filter" in result.content

    # picks of every frame the menu offers, and a pick of a withheld one (refused), then refine and reroll
    shown_frames = [f for f in range(16) if f not in withheld]
    for frame in (shown_frames[0], job.rendered().midpoint):
        it = await fake.select(bob, result, f"morph:frames:{job.id}-{job.token}", [str(frame)])
        assert it.original.attachments
    # the menus do not offer them; a modified client sends them anyway
    refused = await fake.forge_component(bob, result, f"morph:frames:{job.id}-{job.token}", [str(withheld[0])])
    assert refused.original.ephemeral and "withheld by the safety filter" in refused.original.content
    gap = withheld[0] if withheld[0] + 1 < 16 else withheld[0] - 1
    refine = await fake.forge_component(bob, result, f"morph:refine:{job.id}-{job.token}", [str(gap)])
    assert refine.original.ephemeral and "withheld by the safety filter" in refine.original.content
    reroll = await fake.click(bob, result, f"morph:reroll:{job.id}-{job.token}")
    assert reroll.original.ephemeral and "withheld frames" in reroll.original.content
    menu = next(c for row in result.components for c in row["components"]
                if c.get("custom_id", "").startswith("morph:frames:"))
    assert not {int(o["value"]) for o in menu["options"]} & set(withheld)

    flagged = recording.flagged()
    assert len(flagged) == len(withheld)
    pictures = uploaded_pictures(fake)
    assert {name.rsplit(".", 1)[1] for name, _ in pictures} == {"mp4", "gif", "png"}
    assert leaks(pictures, recording) == []
    # and the check is not blind: the unflagged frames are in the uploads
    shown = [a for a, f in recording.seen if not f]
    assert any(looks_like(pic, shown[0]) for name, pic in pictures if name.endswith(".gif"))


async def test_mostly_flagged_is_withheld_whole_and_the_author_is_told_privately(toy_harness, toy_checker):
    h, fake = toy_harness, toy_harness.fake
    recording = await start(h, toy_checker)
    alice = h.guild.add_member("alice")
    it = await fake.slash(alice, "morph", **MOSTLY)
    job_id = job_id_of(it.content)
    job = await h.wait_state(job_id, "withheld", timeout=300)
    assert job.safety.whole and job.artifact_dir is None
    status = await fake.wait_for_message(
        lambda m: m.id == it.original.id and "withheld by the safety filter" in m.content, 30)
    assert status.content == f"🛡️ Morph job #{job_id} was withheld by the safety filter."
    private = await fake.wait_for_message(lambda m: m.ephemeral and "was not posted" in m.content, 30)
    assert private.interaction_user_id == alice.id
    assert h.result_messages(job_id) == [] and uploaded_pictures(fake) == []
    assert len(recording.flagged()) > 3


async def test_an_age_restricted_channel_with_nsfw_allow_gets_everything(toy_harness, toy_checker):
    h, fake = toy_harness, toy_harness.fake
    recording = await start(h, toy_checker)
    alice = h.guild.add_member("alice")
    admin = h.guild.add_member("mod", permissions=["manage_guild"])
    restricted = h.guild.add_channel("after-dark", nsfw=True)
    thread = h.guild.add_thread(restricted, "stars")
    await h.settled()
    it = await fake.slash(admin, "morphadmin limits", nsfw="allow")
    assert "nsfw: allow" in it.content
    assert (await h.store.audit_log(h.guild.id))[0]["action"] == "limits"

    job_id = job_id_of((await fake.slash(alice, "morph", in_channel=thread, **MOSTLY)).content)
    result = await h.result_message(job_id, timeout=300)
    job = await h.wait_state(job_id, "delivered")
    assert result.channel_id == thread.id and job.channel_nsfw and job.safety.unfiltered
    assert job.safety.flagged and job.safety.withheld == ()
    flagged = recording.flagged()
    gif = gif_frames(next(a for a in result.attachments if a.filename.endswith(".gif")).data)
    assert any(looks_like(np.asarray(f), flagged[0]) for f in gif)  # the flagged frames are posted


async def test_safety_off_refuses_ordinary_channels(toy_harness):
    h, fake = toy_harness, toy_harness.fake
    await h.start_bot(model="toy", default_steps=8, safety=False)
    assert h.bot.worker.checker_factory is None
    alice = h.guild.add_member("alice")
    refused = await fake.slash(alice, "morph", from_="a red circle", to="a blue square", frames=4)
    assert refused.ephemeral and "age-restricted" in refused.content
    assert await h.store.list_jobs(h.guild.id) == []
    restricted = h.guild.add_channel("after-dark", nsfw=True)
    await h.settled()
    ok = await fake.slash(alice, "morph", in_channel=restricted, from_="a red circle", to="a blue square", frames=4)
    assert (await h.wait_state(job_id_of(ok.content), "delivered", timeout=300)).safety is None


async def test_a_checker_that_cannot_be_loaded_blocks_rendering(toy_harness, tmp_path):
    h, fake = toy_harness, toy_harness.fake
    await h.start_bot(model="tiny", safety_checker=str(tmp_path / "no-such-checker"))
    alice, admin = h.guild.add_member("alice"), h.guild.add_member("mod", permissions=["manage_guild"])
    job_id = job_id_of((await fake.slash(alice, "morph", from_="a red circle", to="a blue square", frames=4)).content)
    worker = h.bot.worker

    async def blocked():
        return worker.safety_error is not None

    assert await eventually(blocked, 60)
    assert (await h.store.get(job_id)).state == "queued"
    stats = await fake.slash(admin, "morphadmin stats")
    assert "could not be loaded, so nothing renders" in stats.content


async def test_reports_reach_the_admins_and_hide_the_result(toy_harness, toy_checker):
    h, fake = toy_harness, toy_harness.fake
    await start(h, toy_checker)
    alice, bob, cleo = (h.guild.add_member(n) for n in ("alice", "bob", "cleo"))
    admin = h.guild.add_member("mod", permissions=["manage_guild"])
    await fake.slash(admin, "morphadmin limits", report_hide_after=2)
    # a morph the toy checker passes: at this test's 8 steps, shapes on the toy's default yellow background are
    # blurry enough that it flags some of their frames at some seeds (and a random seed made the test flaky)
    job_id = job_id_of((await fake.slash(alice, "morph", from_="a red circle on a white background",
                                         to="a blue square on a white background", frames=4, seed=1)).content)
    result = await h.result_message(job_id, timeout=300)
    job = await h.wait_state(job_id, "delivered")
    custom = f"morph:report:{job.id}-{job.token}"
    first = await fake.click(bob, result, custom)
    assert first.original.ephemeral and "reported" in first.original.content
    again = await fake.click(bob, result, custom)
    assert "already reported" in again.original.content
    listed = await fake.slash(admin, "morphadmin reports")
    assert f"#{job_id}" in listed.content and "1 report" in listed.content
    await fake.click(cleo, result, custom)
    await fake.wait_for_message(lambda m: f"#{job_id} was hidden after 2 reports" in m.content, 30)
    assert fake.message(result.id).deleted
    assert (await h.store.get(job_id)).hidden_at is not None
    assert [e["action"] for e in await h.store.audit_log(h.guild.id)][:3] == ["hide", "report", "report"]


def png(scene: shapes.Scene) -> bytes:
    buf = io.BytesIO()
    shapes.draw(scene).save(buf, format="PNG")
    return buf.getvalue()


async def test_a_flagged_upload_is_refused_privately_unless_unfiltered_results_are_allowed(toy_harness, toy_checker):
    """#22: the uploads of /morph-images pass the image safety check before anything is queued."""
    h, fake = toy_harness, toy_harness.fake
    recording = await start(h, toy_checker)
    alice = h.guild.add_member("alice")
    admin = h.guild.add_member("mod", permissions=["manage_guild"])
    restricted = h.guild.add_channel("after-dark", nsfw=True)
    await h.settled()

    first = await (await fake.slash(alice, "morph-images", first=fake.upload("star.png", png(STAR_PICTURE)),
                                    to=f"a big red circle {B}", frames=4)).reply()
    assert first.ephemeral and "The first picture was flagged by the bot's image safety filter" in first.content
    second = await (await fake.slash(alice, "morph-images", first=fake.upload("circle.png", png(CIRCLE_PICTURE)),
                                     second=fake.upload("star.png", png(STAR_PICTURE)), frames=4)).reply()
    assert second.ephemeral and "The second picture was flagged" in second.content
    # an age-restricted channel whose server did not allow unfiltered results checks them the same way
    closed = await (await fake.slash(alice, "morph-images", in_channel=restricted,
                                     first=fake.upload("star.png", png(STAR_PICTURE)), to=f"a big red circle {B}",
                                     frames=4)).reply()
    assert closed.ephemeral and "flagged" in closed.content
    assert await h.job_count() == 0 and recording.seen == []  # nothing queued, nothing rendered

    await fake.slash(admin, "morphadmin limits", nsfw="allow")
    ordinary = await (await fake.slash(alice, "morph-images", first=fake.upload("star.png", png(STAR_PICTURE)),
                                       to=f"a big red circle {B}", frames=4)).reply()
    assert ordinary.ephemeral and "flagged" in ordinary.content  # nsfw:allow changes nothing outside
    allowed = await (await fake.slash(alice, "morph-images", in_channel=restricted,
                                      first=fake.upload("star.png", png(STAR_PICTURE)), to=f"a big red circle {B}",
                                      frames=4, seed=3)).reply()
    assert not allowed.ephemeral and "queued" in allowed.content.lower(), allowed.content
    job_id = job_id_of(allowed.content)
    result = await h.result_message(job_id, timeout=300)
    job = await h.wait_state(job_id, "delivered")
    assert result.channel_id == restricted.id and job.channel_nsfw and job.safety.unfiltered
    assert job.safety.flagged and 0 in job.safety.flagged and job.safety.withheld == ()  # the star, unfiltered
    assert fake.violations == []


async def test_the_frames_of_a_picture_morph_are_checked_like_every_morph(toy_harness, toy_checker):
    """A harmless upload morphing into the toy checker's concept: its flagged frames are withheld as for
    /morph, and no byte of them reaches the channel."""
    h, fake = toy_harness, toy_harness.fake
    recording = await start(h, toy_checker)
    alice = h.guild.add_member("alice")
    answer = await (await fake.slash(alice, "morph-images", first=fake.upload("circle.png", png(CIRCLE_PICTURE)),
                                     to=f"a big yellow star {B}", frames=8, seed=4, pacing="uniform")).reply()
    assert "queued" in answer.content.lower(), answer.content
    job_id = job_id_of(answer.content)
    result = await h.result_message(job_id, timeout=300)
    job = await h.wait_state(job_id, "delivered")
    withheld = job.safety.withheld
    assert withheld and 0 not in withheld and not job.safety.whole  # the picture's end is shown, the star's not
    assert f"{len(withheld)} of 8 frames withheld by the safety filter" in result.content
    flagged = recording.flagged()
    assert len(flagged) == len(withheld)
    pictures = uploaded_pictures(fake)
    assert leaks(pictures, recording) == []
    assert leaks([("the frame itself", flagged[0])], recording) == ["the frame itself"]  # the search can fail
    menu = next(c for row in result.components for c in row["components"]
                if c.get("custom_id", "").startswith("morph:frames:"))
    assert not {int(o["value"]) for o in menu["options"]} & set(withheld)

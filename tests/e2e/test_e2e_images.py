"""/morph-images through the real discord.py client: attachment options resolved from ``data.resolved``, the
pictures downloaded from the fake Discord over loopback and stored with the job, the result posted; the mixed
picture → prompt morph; 🔁 reroll and 🔍 refine of a picture morph; every refused upload queues nothing."""
from __future__ import annotations

import io

import pytest
from e2e_helpers import gif_frames, job_id_of
from PIL import Image

from bot.cogs.images import UPLOAD_NAMES
from testkit.pictures import png_header_only
from toykit import shapes


def picture(fmt: str = "PNG", scene=None, size: int = 64) -> bytes:
    scene = scene or shapes.Scene("circle", "red", "blue", 36, 32, 32)
    buf = io.BytesIO()
    shapes.draw(scene).resize((size, size)).save(buf, format=fmt)
    return buf.getvalue()


STAR = shapes.Scene("star", "yellow", "green", 40, 30, 34)


@pytest.mark.slow
async def test_two_pictures_are_downloaded_stored_and_morphed(harness):
    fake, h = harness.fake, harness
    await h.start_bot()
    alice = h.guild.add_member("alice")
    first = fake.upload("me.png", picture())
    second = fake.upload("star.jpg", picture("JPEG", STAR, size=200))

    it = await fake.slash(alice, "morph-images", first=first, second=second, frames=4, seed=3,
                          first_prompt="a red circle")
    answer = await it.reply()
    assert it.latency < 3.0 and not answer.ephemeral and "queued" in answer.content.lower()
    assert "🖼️ a red circle" in answer.content and "🖼️ second picture" in answer.content
    job_id = job_id_of(answer.content)
    assert sorted(fake.downloads) == sorted([first.id, second.id])  # fetched from Discord's URL
    job = await h.store.get(job_id)
    assert job.request.images == list(UPLOAD_NAMES) and job.request.prompts == ["a red circle", ""]
    assert await h.store.uploads(job_id) == {0: first.data, 1: second.data}

    result = await h.result_message(job_id, timeout=120)
    job = await h.wait_state(job_id, "delivered")
    frames = gif_frames(result.attachment(f"morph-{job_id}.gif").data)
    assert len(frames) == 4
    recon = job.result.reconstruction
    assert len(recon) == 2 and all(isinstance(db, float) for db in recon)
    assert job.request.path == "smooth"  # (the tiny model's random weights reproduce nothing: toy's ≥ 24 dB is
    # checked in tests/test_inversion.py)
    assert (f"The first frame reproduces the first picture at {recon[0]:.1f} dB PSNR, the last frame the second "
            f"picture at {recon[1]:.1f} dB.") in result.content
    assert result.guild_id == h.guild.id and fake.violations == []


@pytest.mark.slow
async def test_picture_to_prompt_then_reroll_and_refine(harness):
    fake, h = harness.fake, harness
    await h.start_bot()
    alice, bob = h.guild.add_member("alice"), h.guild.add_member("bob")
    it = await fake.slash(alice, "morph-images", first=fake.upload("me.webp", picture("WEBP")), to="a cat",
                          frames=4, seed=5, pacing="uniform")
    job_id = job_id_of((await it.reply()).content)
    job = await h.store.get(job_id)
    assert job.request.images == [UPLOAD_NAMES[0], None] and job.request.prompts == ["", "a cat"]
    result = await h.result_message(job_id, timeout=120)
    job = await h.wait_state(job_id, "delivered")
    assert job.result.reconstruction[1] is None and isinstance(job.result.reconstruction[0], float)

    # 🔁 reroll: same picture (copied to the new job), a new seed
    reroll = next(c for c in result.custom_ids() if c.startswith("morph:reroll:"))
    rerolled = job_id_of((await (await fake.click(bob, result, reroll)).reply()).content)
    again = await h.store.get(rerolled)
    assert again.request.images == job.request.images and again.request.seed != job.request.seed
    assert await h.store.uploads(rerolled) == await h.store.uploads(job_id)
    rerolled_msg = await h.result_message(rerolled, timeout=120)
    assert len(gif_frames(rerolled_msg.attachment(f"morph-{rerolled}.gif").data)) == 4

    # 🔍 refine between frames 1 and 2: its first and last frames are those two frames
    refine_id = f"morph:refine:{job_id}-{job.token}"
    refined_id = job_id_of((await (await fake.select(bob, result, refine_id, ["0"])).reply()).content)
    refined_msg = await h.result_message(refined_id, timeout=120)
    refined = await h.wait_state(refined_id, "delivered")
    ts = job.result.ts
    assert (refined.request.t_start, refined.request.t_end) == (ts[0], ts[1])
    ours = [await h.store.artifacts.read(job, f"frame_{i:03d}.png") for i in (0, 1)]
    theirs = [await h.store.artifacts.read(refined, f"frame_{i:03d}.png")
              for i in (0, refined.result.frame_count - 1)]
    assert ours == theirs
    assert refined_msg.message_reference["message_id"] == str(result.id)

    # ❌ delete removes the pictures with the frames
    delete = next(c for c in result.custom_ids() if c.startswith("morph:delete:"))
    await (await fake.click(alice, result, delete)).reply()
    assert await h.store.uploads(job_id) == {}
    assert fake.violations == []


@pytest.mark.parametrize("make,needle", [
    (lambda f: f.upload("notes.png", b"just some text, named like a picture" * 10), "not a PNG, JPEG, WebP or GIF"),
    (lambda f: f.upload("doc.png", b"%PDF-1.4\n" + b"x" * 500, "image/png"), "not a PNG, JPEG, WebP or GIF"),
    (lambda f: f.upload("bmp.png", _bmp()), "judged by its content"),
    (lambda f: f.upload("broken.png", picture()[:120]), "damaged"),
    (lambda f: f.upload("huge.png", png_header_only(5000, 5000)), "5000×5000 pixels; the limit is 4096×4096"),
    (lambda f: f.upload("big.png", b"\x89PNG" + b"\0" * (10 * 2**20)), "the limit is 10 MiB"),
    (lambda f: f.upload("clip.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 200), "Discord reports it as video/mp4"),
])
async def test_refused_uploads_queue_nothing(harness, make, needle):
    fake, h = harness.fake, harness
    await h.start_bot()
    alice = h.guild.add_member("alice")
    bad = make(fake)
    it = await fake.slash(alice, "morph-images", first=bad, to="a cat")
    answer = await it.reply()
    assert answer.ephemeral and needle in answer.content, answer.content
    assert await h.job_count() == 0
    if bad.size > 10 * 2**20 or bad.filename in ("huge.png", "clip.mp4"):
        assert fake.downloads == []  # refused from Discord's size, type or width/height, before downloading
    assert fake.violations == []


async def test_a_refused_upload_is_worded_in_the_members_language(harness):
    fake, h = harness.fake, harness
    await h.start_bot()
    yuki = h.guild.add_member("yuki", locale="ja")
    it = await fake.slash(yuki, "morph-images", first=fake.upload("huge.png", png_header_only(5000, 5000)),
                          to="a cat")
    answer = await it.reply()
    assert answer.ephemeral and answer.content == ("❌ 1枚目の画像は 5000×5000 ピクセルです。上限は 4096×4096 です。"
                                                   "もっと小さい画像を使ってください。"), answer.content
    assert await h.job_count() == 0 and fake.downloads == [] and fake.violations == []


@pytest.mark.slow
async def test_a_slow_download_is_answered_in_time_and_queued_after(harness):
    """Discord's 3 s hold while the pictures download: the bot says "thinking…" first, then the job."""
    fake, h = harness.fake, harness
    await h.start_bot(default_steps=1)
    alice = h.guild.add_member("alice")
    fake.download_delay_s = 2.5
    it = await fake.slash(alice, "morph-images", first=fake.upload("a.png", picture()), to="a cat", frames=2)
    assert it.latency < 3.0 and it.response_type == 5  # deferred while downloading
    answer = await it.reply()
    assert "queued" in answer.content.lower() and await h.job_count() == 1
    await h.result_message(job_id_of(answer.content), timeout=60)
    assert fake.violations == []


async def test_a_download_slower_than_the_database_limit_is_not_a_database_outage(harness, monkeypatch):
    """The download has its own timeout (20 s): one longer than the database's limit for the work after the
    claim (WORK_LIMIT_S, shortened here) still queues the job instead of answering "unavailable"."""
    from bot import interactions

    monkeypatch.setattr(interactions, "WORK_LIMIT_S", 2.0)
    fake, h = harness.fake, harness
    await h.start_bot()
    alice = h.guild.add_member("alice")
    fake.download_delay_s = 2.5
    it = await fake.slash(alice, "morph-images", first=fake.upload("a.png", picture()), to="a cat", frames=2)
    assert it.latency < 3.0 and it.response_type == 5  # deferred while downloading
    answer = await it.reply()
    assert not answer.ephemeral and "queued" in answer.content.lower(), answer.content
    assert await h.job_count() == 1 and fake.violations == []


async def test_picture_morphs_take_the_operators_path(harness):
    """MORPH_PATH, as for /morph: smooth by default (the other tests), plain when the operator sets it."""
    fake, h = harness.fake, harness
    await h.start_bot(path="plain")
    alice = h.guild.add_member("alice")
    it = await fake.slash(alice, "morph-images", first=fake.upload("a.png", picture()), to="a cat", frames=2)
    job_id = job_id_of((await it.reply()).content)
    assert (await h.store.get(job_id)).request.path == "plain"


async def test_option_mistakes_are_refused_privately(harness):
    fake, h = harness.fake, harness
    await h.start_bot()
    alice = h.guild.add_member("alice")
    pic = fake.upload("a.png", picture())
    neither = await fake.slash(alice, "morph-images", first=pic)
    assert neither.ephemeral and "one of the two" in neither.content
    both = await fake.slash(alice, "morph-images", first=pic, second=fake.upload("b.png", picture()), to="a cat")
    assert both.ephemeral and "one of the two" in both.content
    twice = await fake.slash(alice, "morph-images", first=pic, to="a cat", second_prompt="a dog")
    assert twice.ephemeral and "leave 'second_prompt' out" in twice.content
    assert await h.job_count() == 0 and fake.downloads == []


def _bmp() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, format="BMP")
    return buf.getvalue()

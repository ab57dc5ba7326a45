"""The smooth path (morph.anchoring) on the tiny model: ends unchanged, frames independent of their batch, both
ways of getting the ends' keys/values, chains, loops, refine, guidance on and off, processors restored."""
import logging
import threading

import numpy as np
import pytest
import torch

from morph import Cancelled, Morpher, RenderRequest
from morph.anchoring import AnchoredAttnProcessor, cache_bytes

torch.set_num_threads(1)

DOG, CAT, BIRD = "a photo of a dog", "a photo of a cat", "a photo of a bird"
#: Frames rendered in other batch sizes differ by float rounding at most (uint8 steps).
BATCH_TOLERANCE = 2


@pytest.fixture
def morpher():
    """A fresh Morpher per test (the tests set its batch size and anchor mode)."""
    return Morpher("tiny", device="cpu")


def _req(**kw):
    base = dict(prompts=[DOG, CAT], frames=5, steps=4, seed=7, pacing="uniform", candidates=3)
    base.update(kw)
    return RenderRequest(**base)


def _arrays(result):
    return [np.asarray(im).astype(int) for im in result.frames]


def _max_diff(a, b):
    return max(int(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def test_smooth_is_the_default_and_changes_only_the_frames_in_between(morpher):
    assert RenderRequest().path == "smooth"
    smooth = _arrays(morpher.render(_req()))
    plain = _arrays(morpher.render(_req(path="plain")))
    for i in (0, -1):
        assert np.abs(smooth[i] - plain[i]).max() <= 1  # the ends are the plain renders
    assert all(np.abs(smooth[i] - plain[i]).mean() > 1 for i in (1, 2, 3))


@pytest.mark.parametrize("mode", ["cache", "batch"])
def test_a_frame_does_not_depend_on_its_batch(morpher, mode):
    morpher.anchor_mode = mode
    runs = {}
    for batch in (1, 4, 8):
        morpher.batch_size = batch
        runs[batch] = _arrays(morpher.render(_req(frames=8)))
    assert _max_diff(runs[1], runs[4]) <= BATCH_TOLERANCE
    assert _max_diff(runs[1], runs[8]) <= BATCH_TOLERANCE


def test_cached_and_in_batch_ends_give_the_same_frames(morpher, count_unet):
    morpher.batch_size = 4
    morpher.anchor_mode = "cache"
    cached = _arrays(morpher.render(_req(frames=6)))
    cache_batches = list(count_unet)
    count_unet.clear()
    morpher.anchor_mode = "batch"
    in_batch = _arrays(morpher.render(_req(frames=6)))
    assert _max_diff(cached, in_batch) <= BATCH_TOLERANCE
    steps = 4
    # (x2 with guidance) pacing asks for the knots first, 0,1,.2,.4, and then .6,.8. Cached: the two ends are
    # recorded in the first batch and read in both: 6 frames of UNet work; in batch: the same first batch,
    # then .6,.8 with both ends riding along: 8
    assert cache_batches == [2 * 4] * steps + [2 * 2] * steps
    assert count_unet == [2 * 4] * steps + [2 * 4] * steps


def test_without_guidance_too():
    """A no-CFG profile (guidance 1: no unconditional half): ends unchanged, frames anchored in between. On
    the trained toy model: without guidance the random tiny one's frames hardly depend on their keys/values
    (its mixed ends are nearly its own), so anchoring moves them by less than a pixel value there."""
    toy = Morpher("toy", device="cpu")
    req = dict(prompts=["a red circle", "a blue square"], guidance=1.0)
    smooth = _arrays(toy.render(_req(**req)))
    plain = _arrays(toy.render(_req(**req, path="plain")))
    assert np.abs(smooth[0] - plain[0]).max() <= 1 and np.abs(smooth[-1] - plain[-1]).max() <= 1
    assert all(np.abs(smooth[i] - plain[i]).mean() > 3 for i in (1, 2, 3))


def test_with_a_negative_prompt(morpher):
    smooth = _arrays(morpher.render(_req(negative="blurry")))
    plain = _arrays(morpher.render(_req(negative="blurry", path="plain")))
    other = _arrays(morpher.render(_req()))
    assert np.abs(smooth[0] - plain[0]).max() <= 1
    assert np.abs(smooth[2] - other[2]).mean() > 1  # the negative prompt steers the frames in between too


def test_each_chain_segment_is_anchored_to_its_own_two_prompts(morpher):
    """A chain's frame between the cat and the bird is the frame of a plain cat → bird morph at that t."""
    chain = _arrays(morpher.render(RenderRequest(prompts=[DOG, CAT, BIRD], frames=5, steps=4, seed=7,
                                                 pacing="uniform", candidates=2)))  # at 0, .5, 1, 1.5, 2
    cat_bird = _arrays(morpher.render(_req(prompts=[CAT, BIRD], frames=3)))  # at 0, .5, 1
    dog_cat = _arrays(morpher.render(_req(frames=3)))
    assert _max_diff(chain[2:], cat_bird) <= BATCH_TOLERANCE
    assert _max_diff(chain[:3], dog_cat) <= BATCH_TOLERANCE


def test_a_loops_closing_segment_is_anchored_to_the_last_and_the_first_prompt(morpher):
    loop = _arrays(morpher.render(RenderRequest(prompts=[DOG, CAT], loop=True, frames=4, steps=4, seed=7,
                                                pacing="uniform", candidates=2)))  # at 0, .5, 1, 1.5
    back = _arrays(morpher.render(_req(prompts=[CAT, DOG], frames=3)))  # at 0, .5, 1
    assert _max_diff(loop[2:], back[:2]) <= BATCH_TOLERANCE


def test_a_refined_range_matches_the_render_it_refines(morpher):
    """Refining 0.25..0.75 anchors to the same two ends: its frames are the original's at those positions."""
    full = morpher.render(_req(frames=5))  # 0, .25, .5, .75, 1
    part = morpher.render(full.request.refine(0.25, 0.75, 3))  # .25, .5, .75
    assert part.ts == [0.25, 0.5, 0.75]
    assert _max_diff(_arrays(full)[1:4], _arrays(part)) <= BATCH_TOLERANCE


def test_processors_are_restored_after_every_render(morpher):
    unet = morpher.pipe.unet
    own = dict(unet.attn_processors)
    plain_before = _arrays(morpher.render(_req(path="plain")))
    morpher.render(_req())
    assert unet.attn_processors == own
    cancel = threading.Event()

    def stop(progress):
        if progress.stage == "denoise":
            cancel.set()

    with pytest.raises(Cancelled):
        morpher.render(_req(), progress=stop, cancel=cancel)
    assert unet.attn_processors == own
    assert not any(isinstance(p, AnchoredAttnProcessor) for p in unet.attn_processors.values())
    assert _max_diff(plain_before, _arrays(morpher.render(_req(path="plain")))) == 0


def test_a_compiled_unet_is_left_alone_and_the_log_says_so(morpher, caplog):
    """The smooth path runs the pipeline's own UNet eagerly when renders would call a compiled wrapper."""
    calls = []

    def compiled(*args, **kwargs):
        calls.append(1)
        return morpher.pipe.unet(*args, **kwargs)

    morpher.unet = compiled
    try:
        with caplog.at_level(logging.INFO, logger="morph.render"):
            smooth = _arrays(morpher.render(_req(frames=3)))
        assert calls == [] and "compiled UNet" in caplog.text
        morpher.render(_req(frames=3, path="plain"))
        assert calls  # the plain path still uses it
    finally:
        morpher.unet = morpher.pipe.unet
    assert _max_diff(smooth, _arrays(morpher.render(_req(frames=3)))) == 0


def test_the_cache_for_sd15_at_512_is_23_mb_per_end_half_and_step():
    """From SD 1.5's UNet architecture (built on the meta device: no weights): 11.55 M numbers per step."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8,
                                    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                                    sample_size=64).to(torch.float16)
    one = cache_bytes(unet, 64, 1, 1, 1)
    text = 16 * 77 * 768 * 2
    assert one - text == 2 * (2 * 4096 * 320 + 2 * 1024 * 640 + 2 * 256 * 1280 + 64 * 1280
                              + 3 * 256 * 1280 + 3 * 1024 * 640 + 3 * 4096 * 320)
    assert 23e6 < one - text < 23.2e6
    assert 2.3e9 < cache_bytes(unet, 64, 25, 2, 2) < 2.33e9


def test_ends_too_big_for_the_cache_ride_along_in_the_batch(morpher, monkeypatch, caplog):
    monkeypatch.setattr(morpher, "free_memory", lambda: 1000)
    with caplog.at_level(logging.INFO, logger="morph.render"):
        low = _arrays(morpher.render(_req()))
    assert "ride along" in caplog.text
    monkeypatch.undo()
    assert _max_diff(low, _arrays(morpher.render(_req()))) <= BATCH_TOLERANCE


def test_straightened_takes_the_cross_fades_colour_and_keeps_its_own_outline():
    """A green frame with a white square between a black and a blue end: its background becomes the ends'
    half-way colour (dark blue, not green), the square's outline stays where and about as sharp as it was."""
    from PIL import Image

    from morph.anchoring import straightened

    def flat(rgb):
        return np.full((64, 64, 3), rgb, dtype=np.uint8)

    frame = flat((40, 180, 60))
    frame[24:40, 24:40] = 255
    black, blue = Image.fromarray(flat((0, 0, 0))), Image.fromarray(flat((0, 0, 250)))
    out = np.asarray(straightened(Image.fromarray(frame), black, blue, 0.5, 1.0, 1 / 16)).astype(int)
    assert np.abs(out[2, 2] - (0, 0, 125)).max() <= 3  # far from the square: the cross-fade's colour
    row = out[32].sum(axis=1)
    assert int(np.argmax(np.abs(np.diff(row[:32])))) == 23  # the outline is where it was, still the sharpest
    assert row[24] - row[23] > 200
    # at t = 0 a frame equal to its first end stays it
    same = np.asarray(straightened(black, black, blue, 0.0, 1.0, 1 / 16)).astype(int)
    assert np.abs(same).max() <= 1


def test_frames_in_between_are_straightened_towards_the_ends_colour(morpher, monkeypatch):
    """On a render, each frame in between ends nearer the ends' cross-fade in mean colour than unstraightened;
    the ends are untouched."""
    from morph import anchoring

    straight = _arrays(morpher.render(_req()))
    monkeypatch.setattr(anchoring, "STRAIGHTEN", 0.0)
    raw = _arrays(morpher.render(_req()))
    assert _max_diff([straight[0], straight[-1]], [raw[0], raw[-1]]) == 0
    ts = [i / 4 for i in range(5)]
    for i in (1, 2, 3):
        fade = (1 - ts[i]) * straight[0] + ts[i] * straight[-1]
        assert (np.abs(straight[i].mean((0, 1)) - fade.mean((0, 1))).sum()
                < np.abs(raw[i].mean((0, 1)) - fade.mean((0, 1))).sum())


def test_pull_moves_anchored_latents_onto_their_ends_line_and_keeps_the_ends():
    """Anchors.pull after a step: the ends' latents are kept as they are; a frame at t moves the given share of
    the way onto (1 - t) end A + t end B, also in a later batch without its ends; an end never kept is an error."""
    from morph.anchoring import Anchors, Row

    anchors = Anchors()
    a, b, frame = torch.zeros(4, 2, 2), torch.full((4, 2, 2), 8.0), torch.full((4, 2, 2), 10.0)
    rows = [Row(record="A"), Row(record="B"), Row(ends=("A", "B"), t=0.25)]
    out = anchors.pull(0, rows, torch.stack([a, b, frame]), 0.5)
    assert torch.equal(out[0], a) and torch.equal(out[1], b)
    assert torch.allclose(out[2], torch.full((4, 2, 2), 6.0))  # 10 + 0.5 x (2 - 10)
    later = anchors.pull(0, [Row(ends=("A", "B"), t=0.75)], frame[None].clone(), 1.0)
    assert torch.allclose(later[0], torch.full((4, 2, 2), 6.0))  # onto the line: 0.25 x 0 + 0.75 x 8
    assert torch.equal(anchors.pull(0, rows, torch.stack([a, b, frame]), 0.0)[2], frame)
    with pytest.raises(RuntimeError, match="not kept at step 1"):
        anchors.pull(1, [Row(ends=("A", "B"), t=0.5)], frame[None].clone(), 0.5)


def test_pulled_frames_lie_nearer_their_ends_cross_fade(morpher, monkeypatch):
    """On a render (colour straightening off, to see the pull alone): every frame in between is nearer the ends'
    pixel cross-fade with the latents pulled than without; the ends are the same either way."""
    from morph import anchoring

    monkeypatch.setattr(anchoring, "STRAIGHTEN", 0.0)
    pulled = _arrays(morpher.render(_req()))
    monkeypatch.setattr(anchoring, "LATENT_PULL", 0.0)
    free = _arrays(morpher.render(_req()))
    assert _max_diff([pulled[0], pulled[-1]], [free[0], free[-1]]) == 0
    for i in (1, 2, 3):
        fade = (1 - i / 4) * pulled[0] + i / 4 * pulled[-1]
        assert np.abs(pulled[i] - fade).mean() < np.abs(free[i] - fade).mean(), i

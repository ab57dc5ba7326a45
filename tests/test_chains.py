"""Chains (a morph through several prompts, optionally looping) and refine (more frames over part of a path),
rendered with the tiny model: joins and refine ends are the very frames of the plain renders; pacing over a
chain spends its frames where the picture changes; the UNet work stays that of uniform spacing."""
import numpy as np
import pytest

from morph import RenderRequest

DOG, CAT, BIRD = "a photo of a dog", "a photo of a cat", "a photo of a bird"
FAST = dict(steps=3, seed=7)
ROUNDING = 2  # of 255: frames rendered in other batches differ by float rounding only


def _px(image):
    return np.asarray(image).astype(int)


def _same(a, b) -> bool:
    return int(np.abs(_px(a) - _px(b)).max()) <= ROUNDING


def test_a_chains_joins_are_the_plain_morphs_end_frames(tiny_morpher):
    chain = tiny_morpher.render(RenderRequest(prompts=[DOG, CAT, BIRD], frames=8, candidates=2, **FAST))
    dog_cat = tiny_morpher.render(RenderRequest([DOG, CAT], frames=2, **FAST))
    cat_bird = tiny_morpher.render(RenderRequest([CAT, BIRD], frames=2, **FAST))
    assert chain.ts[0] == 0.0 and chain.ts[-1] == 2.0 and 1.0 in chain.ts and chain.ts == sorted(chain.ts)
    join = chain.ts.index(1.0)
    assert _same(chain.frames[0], dog_cat.frames[0])
    assert _same(chain.frames[join], dog_cat.frames[-1]) and _same(chain.frames[join], cat_bird.frames[0])
    assert _same(chain.frames[-1], cat_bird.frames[-1])
    # Frames inside the segments really are in-betweens: none equals a prompt's frame.
    assert not any(_same(f, chain.frames[join]) for i, f in enumerate(chain.frames) if i != join)
    # One segment per morph, each owning the frames from its prompt on, with candidates around its midpoint.
    first, second = chain.segments
    assert (first.index, first.first, first.last) == (0, 0, join - 1)
    assert (second.index, second.first, second.last) == (1, join, 7)
    for seg in chain.segments:
        assert seg.first <= seg.midpoint <= seg.last and seg.midpoint in seg.candidates
        assert len(seg.candidates) == 2 and all(seg.first <= c <= seg.last for c in seg.candidates)
    assert chain.candidates == first.candidates + second.candidates
    assert [chain.request.locate(u) for u in (0.0, 1.0, 1.5, 2.0)] == [(0, 0.0), (1, 0.0), (1, 0.5), (1, 1.0)]
    assert chain.unet_evals == 8 and len(chain.distances) == 7


def test_a_loop_returns_to_the_first_prompt_without_repeating_its_frame(tiny_morpher):
    loop = tiny_morpher.render(RenderRequest(prompts=[DOG, CAT], loop=True, frames=6, pacing="uniform", **FAST))
    # the path is 0..2; 2 (the dog again) is frame 0
    assert loop.ts == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0, 4 / 3, 5 / 3])
    assert loop.unet_evals == 6  # the closing frame was not rendered twice
    back = tiny_morpher.render(RenderRequest([CAT, DOG], frames=4, pacing="uniform", **FAST))
    assert _same(loop.frames[3], back.frames[0])
    assert all(_same(a, b) for a, b in zip(loop.frames[3:], back.frames[:3], strict=True))
    assert [s.index for s in loop.segments] == [0, 1] and loop.segments[1].last == 5


@pytest.mark.parametrize("prompts,pick", [([DOG, CAT], "midpoint"), ([DOG, CAT, BIRD], "second segment")])
def test_refine_starts_and_ends_on_the_chosen_frames(tiny_morpher, prompts, pick):
    original = tiny_morpher.render(RenderRequest(prompts=prompts, frames=8, pacing="perceptual", **FAST))
    seg = original.segments[-1]
    i = min(seg.midpoint, seg.last - 1)
    refine = original.request.refine(original.ts[i], original.ts[i + 1], frames=5)
    more = tiny_morpher.render(refine)
    assert more.ts[0] == original.ts[i] and more.ts[-1] == original.ts[i + 1] and len(more.frames) == 5
    assert all(original.ts[i] < t < original.ts[i + 1] for t in more.ts[1:-1])
    assert _same(more.frames[0], original.frames[i]) and _same(more.frames[-1], original.frames[i + 1])
    # its 5 frames and the segment's two ends, which the smooth path anchors it to (rendered, not shown)
    assert more.unet_evals == 5 + 2 and more.request.prompts == prompts and more.request.seed == 7
    assert [s.index for s in more.segments] == [len(prompts) - 2]


def test_a_refine_across_a_prompt_keeps_its_frame(tiny_morpher):
    chain = RenderRequest(prompts=[DOG, CAT, BIRD], frames=6, **FAST)
    more = tiny_morpher.render(chain.refine(0.5, 1.5, frames=5))
    assert 1.0 in more.ts and more.ts[0] == 0.5 and more.ts[-1] == 1.5
    cat = tiny_morpher.render(RenderRequest([CAT, BIRD], frames=2, **FAST)).frames[0]
    assert _same(more.frames[more.ts.index(1.0)], cat)
    assert [(s.index, s.first) for s in more.segments] == [(0, 0), (1, more.ts.index(1.0))]


def test_pacing_over_a_chain_spends_frames_where_it_changes(tiny_morpher):
    # The first segment morphs the dog into the same dog (nothing changes); the second into a cat.
    still_then_change = dict(prompts=[DOG, DOG, CAT], frames=12, **FAST)
    paced = tiny_morpher.render(RenderRequest(pacing="perceptual", **still_then_change))
    uniform = tiny_morpher.render(RenderRequest(pacing="uniform", **still_then_change))

    def per_segment(result):
        return [s.last - s.first + 1 for s in result.segments]

    assert per_segment(uniform) == [6, 6]
    still, changing = per_segment(paced)
    assert still + changing == 12 and changing >= 3 * still  # the coarse pass's 3 frames stay in the still one
    # (a lerp of two equal embeddings is equal up to float rounding: a few 1e-5, against a few 1e-2)
    assert max(paced.distances[:still]) < 0.01 * np.mean(paced.distances[still:])
    assert paced.unet_evals == uniform.unet_evals == 12  # same UNet work
    assert paced.max_over_mean < uniform.max_over_mean

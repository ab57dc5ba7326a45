"""RenderRequest.validate: the one place prompts and numbers are checked for both the CLI and the bot."""
import re

import pytest

from morph.request import MorphError, RenderRequest


def test_candidates_are_clamped_to_the_frame_count():
    r = RenderRequest(["a dog", "a cat"], frames=3, candidates=5).validate()
    assert r.candidates == 3
    assert RenderRequest(["a dog", "a cat"], frames=24, candidates=5).validate().candidates == 5


@pytest.mark.parametrize("candidates", [0, -1, 10])
def test_candidates_out_of_range_are_refused(candidates):
    with pytest.raises(MorphError, match="candidates"):
        RenderRequest(["a dog", "a cat"], candidates=candidates).validate()


def test_validate_normalises_whitespace_and_leaves_the_original_alone():
    original = RenderRequest(["  a\tbig   dog\n", "a cat "])
    r = original.validate()
    assert r.prompts == ["a big dog", "a cat"]
    assert original.prompts[0] == "  a\tbig   dog\n"


def test_round_trip_through_dict_ignores_unknown_keys():
    r = RenderRequest(["a dog", "a cat"], frames=7, seed=3)
    data = r.to_dict() | {"something_new": 1}
    assert RenderRequest.from_dict(data) == r


def test_a_plain_morph_is_a_chain_of_two():
    r = RenderRequest([" a dog ", "a cat"]).validate()
    assert r.prompts == ["a dog", "a cat"]
    assert r.segments == 1 and r.path_range() == (0.0, 1.0) and r.knots() == [0.0, 1.0] and not r.closes_loop()
    assert r.validate() == r  # validating twice changes nothing


def test_chains_and_loops():
    r = RenderRequest(prompts=["a dog", "  a cat", "a bird", "a fish"], frames=8).validate()
    assert r.prompts == ["a dog", "a cat", "a bird", "a fish"]
    assert r.segments == 3 and r.knots() == [0.0, 1.0, 2.0, 3.0]
    assert [r.locate(u) for u in (0.0, 0.25, 1.0, 2.5, 3.0)] == [(0, 0.0), (0, 0.25), (1, 0.0), (2, 0.5), (2, 1.0)]
    looped = RenderRequest(prompts=["a dog", "a cat", "a bird"], loop=True, frames=6).validate()
    assert looped.segments == 3 and looped.knots()[-1] == 3.0 and looped.closes_loop()
    assert looped.locate(2.5) == (2, 0.5)  # bird → dog
    assert RenderRequest(["a dog", "a cat"], loop=True, frames=4).validate().segments == 2  # there and back
    again = RenderRequest.from_dict(r.to_dict())
    assert again == r and again.validate() == r


def test_refine_requests():
    base = RenderRequest(prompts=["a dog", "a cat", "a bird"], frames=12, seed=5, candidates=3).validate()
    r = base.refine(0.5, 1.25, frames=6).validate()
    assert (r.t_start, r.t_end, r.frames, r.seed, r.prompts) == (0.5, 1.25, 6, 5, base.prompts)
    assert r.path_range() == (0.5, 1.25) and r.knots() == [0.5, 1.0, 1.25] and not r.closes_loop()
    assert base.t_start is None  # the original is left alone
    assert RenderRequest.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("kwargs,message", [
    (dict(prompts=["a dog"]), "a chain takes 2 to 4 prompts (got 1)"),
    (dict(prompts=["a", "b", "c", "d", "e"]), "a chain takes 2 to 4 prompts (got 5)"),
    (dict(prompts="a dog"), "a chain takes 2 to 4 prompts (got one text)"),
    (dict(prompts=["a dog", " ", "a bird"]), "The second prompt is empty"),
    (dict(prompts=["a dog", "a cat", "a bird", "\n"]), "The fourth prompt is empty"),
    (dict(prompts=["a dog", "a cat", "a bird"], frames=3), "needs at least 4 frames"),
    (dict(prompts=["a dog", "a cat", "a bird"], loop=True, frames=5), "a chain of 3 segments needs at least 6"),
    (dict(prompts=["a dog", "a cat", "a bird"], seed_b=3), "a second seed only works for a plain"),
    (dict(prompts=["a dog", "a cat"], loop="yes"), "loop must be true or false"),
    (dict(prompts=["a dog", "a cat"], t_start=0.2), "needs both ends"),
    (dict(prompts=["a dog", "a cat"], t_start=0.5, t_end=0.2), "must run forwards inside the path 0..1"),
    (dict(prompts=["a dog", "a cat"], t_start=0.5, t_end=1.5), "inside the path 0..1"),
    (dict(prompts=["a dog", "a cat"], t_start=-0.1, t_end=0.5), "inside the path"),
    (dict(prompts=["a dog", "a cat"], t_start="a", t_end=0.5), "t_start must be a number"),
    (dict(prompts=["a dog", "a cat"], t_start=0.1, t_end=float("nan")), "t_end must be a number"),
    (dict(prompts=["a", "b", "c"], t_start=0.5, t_end=2.0, frames=2), "frames must be at least 3 to refine"),
])
def test_bad_chains_and_ranges_are_refused(kwargs, message):
    with pytest.raises(MorphError, match=re.escape(message)):
        RenderRequest(**kwargs).validate()


@pytest.mark.parametrize("prompt", [
    "\u3164", "\u2800", "\u115f", "\u034f", "\uffa0", "\u3164 \u2800\u2800 \u115f\u1160", "\u034f\u034f",
    "...", "🐶 → 🐱",
])
def test_prompts_without_a_visible_letter_or_digit_are_refused(prompt):
    """Blank-looking fillers (Hangul fillers, the braille blank, the combining grapheme joiner) and
    symbols alone: the prompt looks empty in Discord and gives the model no words."""
    with pytest.raises(MorphError, match="first prompt has no letters or digits"):
        RenderRequest([prompt, "a cat"]).validate()


@pytest.mark.parametrize("prompt", ["a", "猫", "42", "é", "🐶 dog", "개", "a\u3164b"])
def test_one_visible_letter_or_digit_is_enough(prompt):
    assert RenderRequest([prompt, "a cat"]).validate().prompts[0] == prompt


@pytest.mark.parametrize("guidance", ["7", "abc", True, float("nan"), [7]])
def test_a_guidance_that_is_not_a_number_is_refused_clearly(guidance):
    with pytest.raises(MorphError, match="guidance must be"):
        RenderRequest(["a dog", "a cat"], guidance=guidance).validate()
    assert RenderRequest(["a dog", "a cat"], guidance=7).validate().guidance == 7.0

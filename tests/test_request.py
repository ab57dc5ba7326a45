"""RenderRequest.validate: the one place prompts and numbers are checked for both the CLI and the bot."""
import pytest

from morph.request import MorphError, RenderRequest


def test_candidates_are_clamped_to_the_frame_count():
    r = RenderRequest("a dog", "a cat", frames=3, candidates=5).validate()
    assert r.candidates == 3
    assert RenderRequest("a dog", "a cat", frames=24, candidates=5).validate().candidates == 5


@pytest.mark.parametrize("candidates", [0, -1, 10])
def test_candidates_out_of_range_are_refused(candidates):
    with pytest.raises(MorphError, match="candidates"):
        RenderRequest("a dog", "a cat", candidates=candidates).validate()


def test_validate_normalises_whitespace_and_leaves_the_original_alone():
    original = RenderRequest("  a\tbig   dog\n", "a cat ")
    r = original.validate()
    assert (r.prompt_a, r.prompt_b) == ("a big dog", "a cat")
    assert original.prompt_a == "  a\tbig   dog\n"


def test_round_trip_through_dict_ignores_unknown_keys():
    r = RenderRequest("a dog", "a cat", frames=7, seed=3)
    data = r.to_dict() | {"something_new": 1}
    assert RenderRequest.from_dict(data) == r


@pytest.mark.parametrize("prompt", [
    "\u3164", "\u2800", "\u115f", "\u034f", "\uffa0", "\u3164 \u2800\u2800 \u115f\u1160", "\u034f\u034f",
    "...", "🐶 → 🐱",
])
def test_prompts_without_a_visible_letter_or_digit_are_refused(prompt):
    """Blank-looking fillers (Hangul fillers, the braille blank, the combining grapheme joiner) and
    symbols alone: the prompt looks empty in Discord and gives the model no words."""
    with pytest.raises(MorphError, match="first prompt has no letters or digits"):
        RenderRequest(prompt, "a cat").validate()


@pytest.mark.parametrize("prompt", ["a", "猫", "42", "é", "🐶 dog", "개", "a\u3164b"])
def test_one_visible_letter_or_digit_is_enough(prompt):
    assert RenderRequest(prompt, "a cat").validate().prompt_a == prompt

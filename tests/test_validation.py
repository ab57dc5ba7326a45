import re
from contextlib import contextmanager

import pytest

from bot.messages import error_text
from bot.validation import check_prompt, check_request, contains_banned, words
from morph.request import MorphError, RenderRequest


def shown(err: Exception) -> str:
    """What the member reads: the bot's refusals and the engine's typed ones, worded by bot.messages."""
    return error_text(err)


@contextmanager
def refused(match: str):
    with pytest.raises(MorphError) as info:
        yield info
    assert re.search(match, shown(info.value)), shown(info.value)


def test_clean_prompt_passes_and_is_normalised():
    assert check_prompt("  a   dog\twith a hat \n", "first prompt") == "a dog with a hat"
    assert check_prompt("e-mail me at cat.example", "p") == "e-mail me at cat.example"


@pytest.mark.parametrize("text, words", [
    ("", ["first prompt", "empty"]),
    ("   \t\n ", ["first prompt", "empty"]),
    (None, ["first prompt", "empty"]),
    ("x" * 5000, ["first prompt", "5,000", "1,000"]),  # numbers as the member's language writes them
    ("a dog\x00", ["control"]),
    ("a dog\x07bell", ["control"]),
    ("a\u200bdog", ["invisible"]),
    ("hello @everyone", ["@everyone", "mentions"]),
    ("hi @HERE now", ["@here"]),
    ("a dog <@123456789012345678>", ["user mention", "<@123456789012345678>"]),
    ("a dog <@!42>", ["user mention"]),
    ("a dog <@&42>", ["role mention", "<@&42>"]),
    ("go to <#42>", ["channel mention"]),
])
def test_bad_prompts_are_refused_with_a_clear_message(text, words):
    with pytest.raises(MorphError) as e:
        check_prompt(text, "first prompt")
    for w in words:
        assert w in shown(e.value)


def test_banned_words_whole_word_case_insensitive():
    banned = ["Cat", "hot dog"]
    with refused("does not allow"):
        check_prompt("a big CAT", "second prompt", banned)
    with refused("second prompt"):
        check_prompt("a tasty  Hot   Dog!", "second prompt", banned)
    # substrings of other words are fine
    assert check_prompt("a category of hotdogs", "p", banned) == "a category of hotdogs"
    # the refusal does not repeat the banned word back
    with pytest.raises(MorphError) as e:
        check_prompt("cat", "p", banned)
    assert "cat" not in shown(e.value).lower().replace("category", "")


@pytest.mark.parametrize("prompt", [
    "a big_cat", "a cat2", "2cat", "ｃａｔ", "c\u0430t", "ca\u034ft",  # the audit's bypasses
    "CAT_", "a cat's tail", "cat-like", "a càt", "C\u0410T", "ΗΟΤ DOG", "hot_dog", "HOT--DOG!", "a 🍆🍆",
])
def test_banned_words_are_matched_on_the_words_clip_sees(prompt):
    """Joined with ``_`` or digits, fullwidth, look-alike letters, invisible or combining marks in the
    middle: still the banned word for the text encoder, so still refused."""
    with refused("does not allow"):
        check_prompt(prompt, "second prompt", ["cat", "hot dog", "🍆"])


def test_banned_words_stay_whole_words_and_the_list_is_folded_the_same_way():
    for ok in ("a category", "a concatenation", "scatter", "hot", "a dog", "a hotdog", "caat"):  # "c a t" reads "cat"
        assert check_prompt(ok, "p", ["cat", "hot dog"]) == ok
    # what admins enter is folded like the prompt: case, fullwidth, Cyrillic look-alikes, accents
    for entry in ("ＣＡＴ", "C\u0430t", "cat\u034f", "  Cat  ", "càt"):
        with pytest.raises(MorphError):
            check_prompt("a cat", "p", [entry])
    # an entry that folds to nothing bans nothing
    assert check_prompt("a cat", "p", ["\u034f", " ", "_"]) == "a cat"
    # Chinese and Japanese have no spaces between words: one character is one word
    with pytest.raises(MorphError):
        check_prompt("一只猫", "p", ["猫"])
    assert check_prompt("一只狗", "p", ["猫"]) == "一只狗"


@pytest.mark.parametrize("text", [
    "a big_cat", "a cat2 and 2cats", "it's a dog's life", "don't stop", "R2D2 at 3000K", "hello,world!!",
    "foo_bar-baz.qux", "Mixed CASE words", "a--b__c", "x1y2z3",
])
def test_words_are_the_letter_and_digit_pieces_of_clips_pre_tokenizer(text):
    """The check splits text as CLIP's own pre-tokenizer does (compared here with transformers'
    CLIPTokenizer, which the bot's front does not need)."""
    from transformers import CLIPTokenizer

    backend = CLIPTokenizer().backend_tokenizer
    pieces = [p for p, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))]
    assert words(text, as_read=False) == [p for p in pieces if any(c.isalnum() for c in p)]


@pytest.mark.parametrize("prompt", [
    "see https://evil.example/x", "HTTP://EVIL.COM", "www.evil.com", "join discord.gg/abcdef",
    "discord.com/invite/abc", "evil.com/x", "a cat [click](https://evil.com)", "steam://run/1",
])
def test_links_are_refused(prompt):
    with pytest.raises(MorphError) as e:
        check_prompt(prompt, "first prompt")
    assert "first prompt" in shown(e.value) and "link" in shown(e.value)


@pytest.mark.parametrize("prompt",
                         ["node.js logo", "a cat.", "version 1.5/2", "ratio 16:9", "e-mail me at cat.example"])
def test_words_with_dots_and_colons_are_not_links(prompt):
    assert check_prompt(prompt, "p") == prompt


@pytest.mark.parametrize("changes, words", [
    ({"prompts": ["", "a cat"]}, ["first prompt", "empty"]),
    ({"prompts": ["a dog", "  "]}, ["second prompt", "empty"]),
    ({"prompts": ["a dog", "y" * 5000]}, ["second prompt", "5,000"]),
    ({"negative": "ugly <@&5>"}, ["negative prompt", "role mention"]),
    ({"prompts": ["@everyone dog", "a cat"]}, ["first prompt", "@everyone"]),
    ({"frames": 1}, ["frames", "between 2 and 120"]),
    ({"frames": 500}, ["frames"]),
    ({"frames": 2.5}, ["frames", "whole number"]),
    ({"frames": True}, ["frames"]),
    ({"steps": 0}, ["steps"]),
    ({"steps": 1000}, ["steps"]),
    ({"seed": -1}, ["seed"]),
    ({"seed": 2**40}, ["seed"]),
    ({"size": 100}, ["multiple of 8"]),
    ({"size": 4096}, ["size"]),
    ({"guidance": 99}, ["guidance"]),
    ({"candidates": 0}, ["candidates"]),
    ({"scheduler": "euler_a"}, ["fresh noise"]),
    ({"scheduler": "nope"}, ["unknown scheduler"]),
    ({"pacing": "fast"}, ["pacing"]),
])
def test_bad_requests_are_refused(changes, words):
    req = RenderRequest(["a dog", "a cat"])
    for k, v in changes.items():
        setattr(req, k, v)
    with pytest.raises(MorphError) as e:
        check_request(req)
    for w in words:
        assert w in shown(e.value)


def test_check_request_applies_banned_words_and_frame_cap():
    req = RenderRequest(["a dog", "a cat"], negative="blurry", frames=40)
    with refused("at most 30 on this server"):
        check_request(req, max_frames=30)
    with refused("negative prompt"):
        check_request(req, ["blurry"])
    ok = check_request(RenderRequest([" a  dog ", "a cat"], frames=30), ["horse"], max_frames=30)
    assert ok.prompts[0] == "a dog" and ok.frames == 30


def test_every_prompt_of_a_chain_is_checked():
    chain = RenderRequest(prompts=["a dog", "a cow", "a big_cat", "a fish"], frames=8)
    with refused("third prompt contains a word this server does not allow"):
        check_request(chain, ["cat"])
    with refused("fourth prompt"):
        check_request(RenderRequest(prompts=["a dog", "a cat", "a bird", "@everyone fish"], frames=8))
    ok = check_request(RenderRequest(prompts=["  a dog", "a cat ", "a bird", "a fish"], frames=8))
    assert ok.prompts == ["a dog", "a cat", "a bird", "a fish"]


@pytest.mark.parametrize("prompt", ["cats", "catdog", "kittycat", "kittycats", "c a t", "c.a.t", "c4t", "ᏟᎪᎢ",
                                    "ᴄᴀᴛ", "caт", "a big_CAT", "two CATS"])
def test_a_banned_word_is_seen_as_the_model_sees_it(prompt):
    """Sub-words of CLIP's tokenizer (catdog = cat + dog), plurals, letters spelled apart, digits used as
    letters and Unicode's look-alikes (Cherokee, small capitals, Cyrillic)."""
    assert contains_banned(prompt, ["cat"])
    with refused("does not allow"):
        check_prompt(f"a picture of {prompt}", banned_words=["cat"])


@pytest.mark.parametrize("prompt", ["category", "concatenation", "scatter", "educate", "a dog", "catalog"])
def test_words_that_only_hold_a_banned_words_letters_pass(prompt):
    assert not contains_banned(prompt, ["cat"])
    assert check_prompt(prompt, banned_words=["cat"]) == prompt


@pytest.mark.parametrize("prompt", ["a 👨‍👩‍👧 family picnic", "a 🏳️‍🌈 flag", "a 👩🏽‍🚀 in orbit"])
def test_emoji_joined_by_the_zero_width_joiner_are_allowed(prompt):
    assert check_prompt(prompt, banned_words=["cat"]) == prompt


def test_a_zero_width_joiner_inside_a_word_is_still_refused():
    with refused("invisible"):
        check_prompt("ca\u200dt")


def test_clip_subwords_match_the_model_tokenizer_on_its_own_vocabulary():
    """bot.subwords is CLIP's BPE: on words its merges build, it splits as the models' tokenizers do."""
    from bot.subwords import subwords

    assert subwords("catdog") == ("cat", "dog") and subwords("kittycat") == ("kitty", "cat")
    assert subwords("category") == ("category",) and "cat" not in subwords("scatter")

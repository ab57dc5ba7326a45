"""``bot.messages``: what the bot writes. No mention or link from user text, 2,000 characters at most, the
result marker only on results, frame menus and keycaps."""
from __future__ import annotations

import re

import pytest

from bot import messages as msg
from bot.result import Animation, JobResult, SegmentResult
from morph.request import Notice, RenderRequest
from testkit.languages import assert_no_english

SHRUNK = Notice("reduced_size", {"before": "512", "after": "384"})

MEMBER = 902
MENTION = re.compile(r"<(@[!&]?|#)\d+>|@(everyone|here)")


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
    gaps = [b - a for a, b in zip(chosen, chosen[1:], strict=False)]
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
CHAIN_RESULT = JobResult(frame_count=24, candidates=(2, 3, 8, 9, 14, 15, 20, 21), mp4_error="no PyAV",
                         animations=(Animation("mp4", 1, 24, (384, 384), (SHRUNK,)),),
                         segments=tuple(SegmentResult(k, 6 * k, 6 * k + 5, 6 * k + 3, (6 * k + 2, 6 * k + 3))
                                        for k in range(4)))


def cut(words: str) -> Notice:
    """The engine's notice that the first prompt lost ``words`` at CLIP's 77 tokens."""
    return Notice("prompt_truncated", {"what": "first prompt", "limit": 77, "dropped": words})


def _mentions_except(text: str, allowed: set[str]) -> list[str]:
    return [m.group(0) for m in MENTION.finditer(text) if m.group(0) not in allowed]


def test_texts_never_contain_mentions_from_user_text():
    result = JobResult(frame_count=24, candidates=(10, 11, 12), one_minus_gini=0.91, max_over_mean=1.3, seconds=75,
                       animations=(Animation("gif", 1, 24, (384, 384), (SHRUNK,)),), warnings=(cut(NASTY),))
    texts = [
        msg.queued_text(1, RenderRequest([NASTY, NASTY], frames=24), MEMBER, 3),
        msg.rendering_text(1, RenderRequest([NASTY, NASTY]), MEMBER),
        msg.result_text(1, RenderRequest([NASTY, NASTY], seed=5), MEMBER, result, note=NASTY),
        msg.result_text(1, RenderRequest(prompts=[NASTY] * 4, loop=True), MEMBER, CHAIN_RESULT),
        msg.failed_text(1, NASTY),
        msg.delivered_text(1, RenderRequest([NASTY, NASTY]), MEMBER, None),
        msg.queue_list_text([(1, "queued", RenderRequest([NASTY, NASTY]), 2)]),
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
    result = JobResult(frame_count=24, candidates=(1,), warnings=(cut(LINKS),),
                       animations=(Animation("gif", 1, 24, (64, 64), (Notice("reduced_size", {"before": LINKS,
                                                                                             "after": LINKS}),)),))
    texts = [
        msg.queued_text(1, RenderRequest([LINKS, LINKS]), MEMBER, 3),
        msg.rendering_text(1, RenderRequest([LINKS, LINKS]), MEMBER),
        msg.result_text(1, RenderRequest([LINKS, LINKS]), MEMBER, result, note=LINKS), msg.failed_text(1, LINKS),
        msg.result_text(1, RenderRequest(prompts=[LINKS] * 3), MEMBER, CHAIN_RESULT),
        msg.delivered_text(1, RenderRequest([LINKS, LINKS]), MEMBER, None),
        msg.queue_list_text([(1, "queued", RenderRequest([LINKS, LINKS]), 2)]),
        msg.safe(LINKS, 500),
    ]
    for text in texts:
        assert DISCORD_LINK.findall(text) == [], text
    # it still reads the same: only invisible characters were added
    assert msg.safe(LINKS, 500).replace("\u200b", "").replace("\\", "") == LINKS
    assert msg.safe("node.js at 16:9, cuda:0") == "node.js at 16:9, cuda:0"  # not links: untouched


def test_result_text_names_job_prompts_user_smoothness():
    result = JobResult(frame_count=24, candidates=(10, 11, 12), one_minus_gini=0.913, max_over_mean=1.34, seconds=75)
    text = msg.result_text(42, RenderRequest(["a dog", "a cat"], seed=7), MEMBER, result)
    assert msg.RESULT_MARKER_RE.match(text).group(1) == "42"
    assert "**a dog** → **a cat**" in text and f"<@{MEMBER}>" in text
    assert "smoothness 0.91" in text and "1.3×" in text and "seed 7" in text and "24 frames" in text
    assert "1️⃣–3️⃣" in text and "1 min 15 s" in text
    # status texts must never look like a result (exactly-once delivery searches for that marker)
    for other in (msg.queued_text(42, RenderRequest(["a", "b"]), MEMBER, 1),
                  msg.rendering_text(42, RenderRequest(["a", "b"]), MEMBER),
                  msg.delivered_text(42, RenderRequest(["a", "b"]), MEMBER, None), msg.failed_text(42, "x"),
                  msg.cancelled_text(42, MEMBER), msg.pick_text(42, 3, 24, MEMBER, 1)):
        assert not msg.RESULT_MARKER_RE.match(other)


def test_long_texts_are_clipped_to_2000():
    text = msg.result_text(1, RenderRequest(["a" * 1000, "b" * 1000]), MEMBER,
                           JobResult(frame_count=2, warnings=(cut("w" * 500),) * 10))
    assert len(text) <= 2000
    text = msg.result_text(1, RenderRequest(prompts=["a" * 1000] * 4, loop=True), MEMBER, CHAIN_RESULT)
    assert len(text) <= 2000
    assert len(msg.failed_text(1, "x" * 5000)) <= 2000


def test_progress_text():
    from morph.request import Progress

    text = msg.rendering_text(3, RenderRequest(["a", "b"]), MEMBER, Progress(8, 24, 13, 25, 0.42), eta_s=65)
    assert "frames 8/24" in text and "step 13/25" in text and "42%" in text and "ETA 1 min 5 s" in text
    assert msg.queued_text(3, RenderRequest(["a", "b"], frames=24), MEMBER, 2).count("Position **2** in the queue") == 1


def test_pick_text():
    assert (msg.pick_text(9, 11, 24, MEMBER, 2)
            == f"🖼️ <@{MEMBER}> picked candidate 2 (frame 12 of 24) from morph job #9.")
    assert msg.pick_text(9, 0, 24, MEMBER) == f"🖼️ <@{MEMBER}> picked frame 1 of 24 from morph job #9."


def test_duration_reads_well_from_tenths_to_hours():
    assert [msg.duration(x) for x in (None, 0.04, 2.44, 9.96, 45.2, 185, 3720)] == \
        ["?", "0.0 s", "2.4 s", "10 s", "45 s", "3 min 5 s", "1 h 2 min"]


def test_a_picture_morphs_result_reports_the_reconstruction_of_its_ends():
    """The PSNR of each picture end's frame against its upload, in the member's language; nothing for a
    prompt morph, a refine that reaches no picture end only its ends' among the frames."""
    two = JobResult(frame_count=8, reconstruction=(30.94, 27.06))
    request = RenderRequest(["", ""], images=["upload:first", "upload:second"], seed=1)
    text = msg.result_text(7, request, MEMBER, two)
    assert ("🖼️ The first frame reproduces the first picture at 30.9 dB PSNR, the last frame the second picture "
            "at 27.1 dB.") in text
    assert "30.9 dB" in msg.result_text(7, request, MEMBER, two, locale="ja") and "再現" in msg.result_text(
        7, request, MEMBER, two, locale="ja")
    mixed = JobResult(frame_count=8, reconstruction=(28.0, None))
    assert "🖼️ The first frame reproduces the picture at 28.0 dB PSNR." in msg.result_text(7, request, MEMBER, mixed)
    assert msg.reconstruction_text(JobResult(frame_count=8, reconstruction=(None, 25.5))) == (
        "🖼️ The last frame reproduces the second picture at 25.5 dB PSNR.")
    for none in ((), (None, None)):
        result = JobResult(frame_count=8, reconstruction=none)
        assert msg.reconstruction_text(result) is None
        assert "reproduces" not in msg.result_text(7, request, MEMBER, result)


def test_the_engines_notices_are_worded_in_the_results_language():
    """Render warnings and what an animation gave up are the engine's notices (code and facts), worded in the
    language of the result, with the words a prompt lost quoted as typed."""
    result = JobResult(frame_count=24, candidates=(11,), warnings=(
        cut("in the snow"), Notice("negative_unused", {"guidance": 0.0})), animations=(
        Animation("mp4", 1, 24, (384, 384), (SHRUNK, Notice("reduced_bitrate", {"kbits": 1234}))),
        Animation("gif", 1, 12, (384, 384), (SHRUNK, Notice("reduced_palette", {"before": 256, "after": 64}),
                                             Notice("reduced_frames", {"before": 24, "after": 12})))))
    english = msg.result_text(1, RenderRequest(["a dog", "a cat"]), MEMBER, result)
    assert "MP4 shrunk to fit the upload limit: size 512→384, bitrate 1,234 kbit/s" in english
    assert "GIF shrunk to fit the upload limit: size 512→384, palette 256→64, frames 24→12" in english
    assert ("Note: The first prompt is longer than CLIP's 77 tokens; these words were dropped: in the snow"
            in english) and "Note: The negative prompt was not used: at guidance 0 this model" in english
    japanese = msg.result_text(1, RenderRequest(["a dog", "a cat"]), MEMBER, result, locale="ja")
    assert "MP4 を縮小しました: サイズ 512→384、ビットレート 1,234 kbit/s" in japanese
    assert "色数 256→64、フレーム数 24→12" in japanese
    assert "1つ目のプロンプトが CLIP の上限 77 トークンを超えたため、次の語は使われませんでした: in the snow" \
        in japanese
    assert "ガイダンス 0 では" in japanese
    assert_no_english([japanese])


def test_the_withheld_notice_names_a_picture_end_in_the_authors_language():
    request = RenderRequest(prompts=["", "a cat"], images=["upload:1", None])
    japanese = msg.withheld_author_text(7, request, 3, 24, "ja")
    assert "🖼️ 1枚目の画像" in japanese and "first picture" not in japanese
    assert "🖼️ first picture" in msg.withheld_author_text(7, request, 3, 24)

"""Prompts that slip past a naive check, through the real command path: banned words hidden from a plain
text match but seen by CLIP, blank-looking prompts, and links. Each is refused privately, nothing is
queued, nothing public is posted; honest prompts next to them still work."""
from __future__ import annotations

from e2e_helpers import job_id_of

ALL_STATES = ["queued", "running", "rendered", "delivered", "failed", "cancelled"]

BANNED_BYPASSES = ["a big_cat", "a cat2", "2cat", "ｃａｔ", "c\u0430t", "ca\u034ft", "A HOT_DOG"]
BLANK = ["\u3164", "\u2800\u2800", "\u115f", "\u034f", "\u3164 \u2800 \u115f"]
LINKS = ["https://evil.example/x", "see www.evil.com", "discord.gg/abcdef", "evil.com/x"]


async def test_disguised_banned_words_blank_prompts_and_links_are_refused(harness):
    fake, h = harness.fake, harness
    await h.start_bot(max_frames=12)
    mod = h.guild.add_member("mod", permissions=["manage_guild"])
    eve = h.guild.add_member("eve")

    # the admin's list goes through the same folding: fullwidth and mixed case still mean "cat"
    limits = await fake.slash(mod, "morphadmin limits", banned_words="ＣＡＴ, Hot Dog")
    assert limits.ephemeral and "banned_words: 2" in limits.content

    cases = ([(dict(from_="a dog", to=p), "does not allow") for p in BANNED_BYPASSES]
             + [(dict(from_=p, to="a cat"), "no letters or digits") for p in BLANK]
             + [(dict(from_="a dog", to="a bird", negative=p), "link") for p in LINKS])
    for options, why in cases:
        it = await fake.slash(eve, "morph", **options)
        assert it.response_type == 4 and it.ephemeral, (options, it.content)
        assert it.content.startswith("❌") and why in it.content, (options, it.content)
    assert await h.store.list_jobs(None, states=ALL_STATES) == []
    assert [m for m in fake.all_messages() if not m.ephemeral] == []

    # whole words only: "category" is not "cat"; a visible letter next to a filler is a prompt
    ok = await fake.slash(eve, "morph", from_="a category", to="a\u3164dog", frames=2)
    assert not ok.ephemeral and "queued" in ok.content.lower()
    job = await h.store.get(job_id_of(ok.content))
    assert job.request.prompts == ["a category", "a\u3164dog"]
    result = await h.result_message(job.id, timeout=60)
    assert "**a category** → **a\u3164dog**" in result.content
    assert fake.violations == []

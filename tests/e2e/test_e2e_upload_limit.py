"""Discord's upload limit: in a guild that allows only 400 kB per file, a 120-frame morph is shrunk to
fit (the fake answers 413 to anything larger), and the result says what was reduced."""
from __future__ import annotations

import pytest
from e2e_helpers import gif_frames, job_id_of

LIMIT = 400_000


@pytest.mark.slow
async def test_gif_is_shrunk_to_the_guild_upload_limit(harness):
    fake, h = harness.fake, harness
    small = fake.add_guild("Small Club", upload_limit=LIMIT)
    await h.start_bot(default_steps=1, max_frames=120)
    alice = small.add_member("alice")

    it = await fake.slash(alice, "morph", from_="a dog", to="a cat", frames=120)
    job_id = job_id_of(it.content)
    result = await h.result_message(job_id, timeout=120)
    job = await h.wait_state(job_id, "delivered")
    assert job.upload_limit == LIMIT  # from the interaction's attachment_size_limit
    gif = result.attachment(f"morph-{job_id}.gif")
    assert gif.size <= LIMIT and all(a.size <= LIMIT for a in result.attachments)
    reductions = job.result.animation("gif").reductions
    assert reductions and "GIF shrunk to fit the upload limit" in result.content
    frames = gif_frames(gif.data)
    assert len(frames) == job.result.animation("gif").frame_count and 2 <= len(frames) <= 120
    print(f"\n120 frames → GIF of {gif.size} bytes, {len(frames)} frames; reductions: {reductions}")
    assert fake.violations == []


@pytest.mark.slow
async def test_a_japanese_server_reads_what_was_shrunk_and_cut_in_japanese(harness):
    """The reductions and the engine's render warnings are notices worded in the server's language."""
    from testkit.languages import assert_no_english

    fake, h = harness.fake, harness
    small = fake.add_guild("小さな部", upload_limit=LIMIT, preferred_locale="ja")
    await h.start_bot(default_steps=1, max_frames=120)
    yuki = small.add_member("yuki", locale="ja")
    long_prompt = " ".join(["a dog"] * 40) + " wizard castle"  # past CLIP's 77 tokens

    it = await fake.slash(yuki, "morph", from_=long_prompt, to="a cat", frames=120)
    job_id = job_id_of(it.content)
    result = await h.result_message(job_id, timeout=120)
    job = await h.wait_state(job_id, "delivered")
    assert [n.code for n in job.result.warnings] == ["prompt_truncated"]
    assert job.result.warnings[0].facts["dropped"].endswith("wizard castle")
    shrunk = next(line for line in result.content.splitlines() if "GIF を縮小しました: " in line)
    labels = {"reduced_size": "サイズ ", "reduced_palette": "色数 ", "reduced_frames": "フレーム数 "}
    reductions = job.result.animation("gif").reductions
    assert reductions and all(labels[r.code] in shrunk for r in reductions), shrunk
    cut = "注意: 1つ目のプロンプトが CLIP の上限 77 トークンを超えたため、次の語は使われませんでした: "
    assert cut in result.content and result.content.endswith("wizard castle")  # the prompt's words as typed
    assert_no_english([result.content])

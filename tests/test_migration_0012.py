"""Migration 0012 turns the English warnings and reductions a version 1 result stored into the engine's
notices (bot/result.py version 2), on both backends, so an older job's result is worded in its language."""
import json
from dataclasses import asdict

from migration_helpers import open_before

from bot.config import Settings
from bot.messages import notice_text
from bot.result import Animation, JobResult
from bot.store import Store
from morph.request import Notice, RenderRequest

#: Every sentence version 1 stored, with the notice it stands for (its English form is the sentence again).
WARNINGS = {
    "The negative prompt was not used: at guidance 0 this model renders without classifier-free guidance, which "
    "is what a negative prompt steers.": Notice("negative_unused", {"guidance": 0.0}),
    "The second prompt is longer than CLIP's 77 tokens; these words were dropped: a wizard's castle, at dusk":
        Notice("prompt_truncated", {"what": "second prompt", "limit": 77, "dropped": "a wizard's castle, at dusk"}),
    "The negative prompt is longer than CLIP's 77 tokens; these words were dropped: blurry":
        Notice("prompt_truncated", {"what": "negative prompt", "limit": 77, "dropped": "blurry"}),
}
MP4_REDUCTIONS = {"size 512x384→384x288": Notice("reduced_size", {"before": "512x384", "after": "384x288"}),
                  "bitrate 1,234 kbit/s": Notice("reduced_bitrate", {"kbits": 1234})}
GIF_REDUCTIONS = {"size 512→256": Notice("reduced_size", {"before": "512", "after": "256"}),
                  "palette 256→64": Notice("reduced_palette", {"before": 256, "after": 64}),
                  "frames 24→12": Notice("reduced_frames", {"before": 24, "after": 12})}


def version_1(result: JobResult, warnings, mp4, gif) -> str:
    """``result`` as version 1 wrote it: its warnings and reductions English sentences."""
    d = asdict(result)
    d.update(version=1, warnings=list(warnings))
    d["animations"][0]["reductions"], d["animations"][1]["reductions"] = list(mp4), list(gif)
    return json.dumps(d)


async def test_0012_turns_stored_sentences_into_notices(db_url, tmp_path):
    result = JobResult(frame_count=24, format="both", animations=(Animation("mp4", 900, 24, (384, 288)),
                                                                  Animation("gif", 800, 12, (256, 256))))
    rows = [version_1(result, WARNINGS, MP4_REDUCTIONS, GIF_REDUCTIONS), version_1(result, [], [], [])]
    database = await open_before(db_url, tmp_path, 12)
    request = json.dumps(RenderRequest(prompts=["a dog", "a cat"], frames=24).to_dict())
    try:
        for row in rows:
            await database.execute(
                "INSERT INTO jobs (guild_id, channel_id, user_id, state, request, created_at, upload_limit, token, "
                "artifact_dir, output_format, result) VALUES (1, 2, 3, 'delivered', $1, 10, 1000, 'abcd1234', 'x', "
                "'both', $2)", request, row)
    finally:
        await database.close()
    store = await Store.open(db_url, Settings())
    try:
        full, empty = [(await store.get(i)).result for i in (1, 2)]
    finally:
        await store.close()
    assert full.warnings == tuple(WARNINGS.values())
    assert full.animation("mp4").reductions == tuple(MP4_REDUCTIONS.values())
    assert full.animation("gif").reductions == tuple(GIF_REDUCTIONS.values())
    # the notices' English is the sentences stored before, word for word
    assert [str(n) for n in full.warnings] == list(WARNINGS)
    assert [str(n) for a in full.animations for n in a.reductions] == [*MP4_REDUCTIONS, *GIF_REDUCTIONS]
    assert empty.warnings == () and empty.animation("gif").reductions == () and empty.version == 2
    assert full == JobResult.from_json(full.to_json())
    assert notice_text(full.warnings[1], "ja") == ("2つ目のプロンプトが CLIP の上限 77 トークンを超えたため、"
                                                   "次の語は使われませんでした: a wizard's castle, at dusk")

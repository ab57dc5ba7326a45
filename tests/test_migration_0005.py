"""Migration 0005 converts rows written in the older forms, on both backends, so the code reads one form only."""
import json

from migration_helpers import open_before

from bot.config import Settings
from bot.result import RESULT_VERSION, Animation, JobResult, SegmentResult
from bot.store import Store
from morph.request import Notice, RenderRequest

CUT = "The first prompt is longer than CLIP's 77 tokens; these words were dropped: in the snow"

#: A result as the worker wrote it between formats (0004) and the typed record: MP4 and GIF, flat keys.
FLAT_BOTH = {
    "ts": [0.0, 0.5, 1.0], "distances": [0.2, 0.3], "max_over_mean": 1.2, "one_minus_gini": 0.9,
    "midpoint": 1, "candidates": [1], "frame_count": 3, "warnings": [CUT], "seconds": 2.5,
    "segments": [{"index": 0, "first": 0, "last": 2, "midpoint": 1, "candidates": [1]}],
    "format": "both", "files": ["mp4", "gif"], "fell_back": False, "mp4_error": None, "budget": 9000,
    "sheet_bytes": 77, "frame_size": [64, 64], "model": "toy", "unet_evals": 30,
    "mp4_bytes": 500, "mp4_frame_count": 3, "mp4_size": [64, 64], "mp4_reductions": [], "mp4_bitrate": 12000,
    "gif_bytes": 800, "gif_frame_count": 3, "gif_size": [48, 48], "gif_reductions": ["size 64→48"],
}
#: A result of the first versions: a GIF only, its budget named gif_budget, no segments, files or format.
FLAT_GIF_ONLY = {
    "ts": [0.0, 1.0], "distances": [0.4], "max_over_mean": 1.0, "one_minus_gini": 1.0, "midpoint": 0,
    "candidates": [0], "frame_count": 2, "gif_reductions": [], "warnings": [], "seconds": 1.0,
    "gif_bytes": 300, "gif_frame_count": 2, "gif_size": [32, 32], "gif_budget": 4000, "sheet_bytes": 10,
    "frame_size": [32, 32], "model": "tiny", "unet_evals": 4,
}


async def test_0005_turns_the_untyped_results_into_records(db_url, tmp_path):
    database = await open_before(db_url, tmp_path, 5)
    request = json.dumps(RenderRequest(prompts=["a dog", "a cat"], frames=3).to_dict())
    try:
        for result in (FLAT_BOTH, FLAT_GIF_ONLY, None):
            await database.execute(
                "INSERT INTO jobs (guild_id, channel_id, user_id, state, request, created_at, upload_limit, "
                "token, artifact_dir, output_format, result) VALUES (1, 2, 3, $1, $2, 10, 1000, 'feedbeef', $3, "
                "'gif', $4)", "queued" if result is None else "delivered", request,
                None if result is None else "x", None if result is None else json.dumps(result))
    finally:
        await database.close()

    store = await Store.open(db_url, Settings())
    try:
        both, gif_only, queued = [await store.get(i) for i in (1, 2, 3)]
    finally:
        await store.close()
    assert both.result == JobResult(
        frame_count=3, ts=(0.0, 0.5, 1.0), distances=(0.2, 0.3), max_over_mean=1.2, one_minus_gini=0.9,
        midpoint=1, candidates=(1,), segments=(SegmentResult(0, 0, 2, 1, (1,)),), seconds=2.5,
        warnings=(Notice("prompt_truncated", {"what": "first prompt", "limit": 77, "dropped": "in the snow"}),),
        format="both", animations=(Animation("mp4", 500, 3, (64, 64), (), 12000),
                                   Animation("gif", 800, 3, (48, 48),
                                             (Notice("reduced_size", {"before": "64", "after": "48"}),))),
        mp4_error=None, budget=9000, sheet_bytes=77, frame_size=(64, 64), model="toy", unet_evals=30)
    assert both.result.files == ("mp4", "gif") and not both.result.fell_back
    assert gif_only.result == JobResult(
        frame_count=2, ts=(0.0, 1.0), distances=(0.4,), max_over_mean=1.0, one_minus_gini=1.0, midpoint=0,
        candidates=(0,), seconds=1.0, format="gif", animations=(Animation("gif", 300, 2, (32, 32)),),
        budget=4000, sheet_bytes=10, frame_size=(32, 32), model="tiny", unet_evals=4)
    assert gif_only.result.version == RESULT_VERSION and queued.result is None


async def test_0005_gives_old_jobs_a_token_a_folder_name_a_format_and_a_prompt_list(db_url, tmp_path):
    """Rows from before 0002 (no token, a path as artifact_dir) and 0004 (no format), with a request of the
    time (prompt_a/prompt_b): after 0005 each holds the one form the code reads."""
    database = await open_before(db_url, tmp_path, 5)
    plain = {"prompt_a": "a dog", "prompt_b": "a cat", "prompts": [], "frames": 4, "seed": 3}
    chain = {"prompt_a": "a dog", "prompt_b": "a cat", "prompts": ["a dog", "a cat", "a bird"], "frames": 6}
    try:
        for request, folder in ((plain, "/srv/morph/data/1"), (chain, None)):
            await database.execute(
                "INSERT INTO jobs (guild_id, channel_id, user_id, state, request, created_at, upload_limit, "
                "artifact_dir) VALUES (1, 2, 3, 'queued', $1, 10, 1000, $2)", json.dumps(request), folder)
    finally:
        await database.close()

    store = await Store.open(db_url, Settings())
    try:
        first, second = [await store.get(i) for i in (1, 2)]
        rows = await store.db.fetch("SELECT request FROM jobs ORDER BY id")
    finally:
        await store.close()
    assert first.request == RenderRequest(prompts=["a dog", "a cat"], frames=4, seed=3)
    assert second.request.prompts == ["a dog", "a cat", "a bird"] and second.request.frames == 6
    assert all("prompt_a" not in json.loads(r["request"]) for r in rows)
    assert first.artifact_dir == "1" and second.artifact_dir is None
    assert first.format == second.format == "gif"
    assert len({first.token, second.token}) == 2 and all(len(t) == 8 and int(t, 16) >= 0
                                                          for t in (first.token, second.token))
    assert first.folder_name == f"1-{first.token}"

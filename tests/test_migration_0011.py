"""Migration 0011 turns the English failure sentences the bot stored before into failure kinds (bot.jobs.failure),
on both backends, so a failed job of an older version is worded in its language when it is shown."""

from migration_helpers import open_before

from bot.config import Settings
from bot.jobs import Failure, read_failure
from bot.messages import failure_text
from bot.store import Store

ENGINE_SENTENCE = "size must be a multiple of 8 (got 100; try 96)."
OLD_REASONS = {
    "the GPU ran out of memory on this morph; try fewer frames or a smaller size.": (Failure.OUT_OF_MEMORY, {}),
    "the renderer failed on the bot's side (the details are in the bot's log).": (Failure.RENDERER, {}),
    "the renderer crashed 3 times on this job": (Failure.CRASHED, {"attempts": 3}),
    "the bot's model could not be loaded; the bot's operator can see why in its log.": (Failure.MODEL_LOAD, {}),
    "could not post the result: Discord 403: Missing Access": (Failure.NOT_POSTED, {}),
    # the engine's own sentences of the time stay as they are (shown as they are)
    ENGINE_SENTENCE: (None, {"text": ENGINE_SENTENCE}),
}


async def test_0011_turns_stored_sentences_into_failure_kinds(db_url, tmp_path):
    database = await open_before(db_url, tmp_path, 11)
    try:
        for reason in OLD_REASONS:
            await database.execute(
                "INSERT INTO jobs (guild_id, channel_id, user_id, state, request, created_at, upload_limit, token, "
                "error) VALUES (1, 2, 3, 'failed', $1, 10, 1000, 'abcd1234', $2)",
                '{"prompts": ["a dog", "a cat"], "frames": 4}', reason)
    finally:
        await database.close()
    store = await Store.open(db_url, Settings())
    try:
        jobs = [await store.get(i) for i in range(1, len(OLD_REASONS) + 1)]
    finally:
        await store.close()
    assert [read_failure(j.error) for j in jobs] == list(OLD_REASONS.values())
    assert failure_text(jobs[2].error, "ja") == "このジョブで生成処理が 3 回続けて異常終了しました"

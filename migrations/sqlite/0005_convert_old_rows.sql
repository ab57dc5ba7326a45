-- Rows written before the code read only one form of each value are converted here, so the code has no
-- fallbacks for them.

-- jobs.result: the untyped dict of the first versions becomes the version 1 record of bot/result.py
-- (the animations in a list, MP4 first; a result from before MP4s made the GIF alone).
UPDATE jobs SET result = json_object(
    'frame_count', coalesce(result ->> '$.frame_count', 0),
    'ts', json(coalesce(result -> '$.ts', '[]')),
    'distances', json(coalesce(result -> '$.distances', '[]')),
    'max_over_mean', coalesce(result ->> '$.max_over_mean', 0.0),
    'one_minus_gini', coalesce(result ->> '$.one_minus_gini', 0.0),
    'midpoint', coalesce(result ->> '$.midpoint', 0),
    'candidates', json(coalesce(result -> '$.candidates', '[]')),
    'segments', json(coalesce(result -> '$.segments', '[]')),
    'warnings', json(coalesce(result -> '$.warnings', '[]')),
    'seconds', coalesce(result ->> '$.seconds', 0.0),
    'format', coalesce(result ->> '$.format', 'gif'),
    'animations', (
        SELECT json_group_array(json_object(
            'kind', f.value,
            'bytes', coalesce(jobs.result ->> ('$.' || f.value || '_bytes'), 0),
            'frame_count', coalesce(jobs.result ->> ('$.' || f.value || '_frame_count'), 0),
            'size', json(coalesce(jobs.result -> ('$.' || f.value || '_size'), '[0, 0]')),
            'reductions', json(coalesce(jobs.result -> ('$.' || f.value || '_reductions'), '[]')),
            'bitrate', jobs.result ->> ('$.' || f.value || '_bitrate')))
        FROM json_each(coalesce(jobs.result -> '$.files', '["gif"]')) AS f),
    'mp4_error', result ->> '$.mp4_error',
    'budget', coalesce(result ->> '$.budget', result ->> '$.gif_budget', 0),
    'sheet_bytes', coalesce(result ->> '$.sheet_bytes', 0),
    'frame_size', json(coalesce(result -> '$.frame_size', '[0, 0]')),
    'model', result ->> '$.model',
    'unet_evals', result ->> '$.unet_evals',
    'reconstruction', json('[]'),
    'version', 1)
WHERE result IS NOT NULL AND result ->> '$.version' IS NULL;

-- Jobs from before 0002 get a token (their old token-less buttons stop working), and their files' folder
-- name in place of the path they stored (the folder was named after the job number).
UPDATE jobs SET token = lower(hex(randomblob(4))) WHERE token IS NULL;
UPDATE jobs SET artifact_dir = CAST(id AS TEXT) WHERE artifact_dir LIKE '%/%';
-- Jobs from before 0004 made a GIF.
UPDATE jobs SET output_format = 'gif' WHERE output_format IS NULL;
-- A request names its prompts in one list (requests stored before chains named prompt_a and prompt_b).
UPDATE jobs SET request = json_remove(
        CASE WHEN json_array_length(coalesce(request -> '$.prompts', '[]')) = 0
             THEN json_set(request, '$.prompts', json_array(request ->> '$.prompt_a', request ->> '$.prompt_b'))
             ELSE request END,
        '$.prompt_a', '$.prompt_b')
WHERE request -> '$.prompt_a' IS NOT NULL OR request -> '$.prompt_b' IS NOT NULL;

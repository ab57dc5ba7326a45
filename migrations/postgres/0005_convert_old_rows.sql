-- As migrations/sqlite/0005_convert_old_rows.sql.

UPDATE jobs SET result = (
    SELECT jsonb_build_object(
        'frame_count', coalesce(r -> 'frame_count', '0'),
        'ts', coalesce(r -> 'ts', '[]'),
        'distances', coalesce(r -> 'distances', '[]'),
        'max_over_mean', coalesce(r -> 'max_over_mean', '0.0'),
        'one_minus_gini', coalesce(r -> 'one_minus_gini', '0.0'),
        'midpoint', coalesce(r -> 'midpoint', '0'),
        'candidates', coalesce(r -> 'candidates', '[]'),
        'segments', coalesce(r -> 'segments', '[]'),
        'warnings', coalesce(r -> 'warnings', '[]'),
        'seconds', coalesce(r -> 'seconds', '0.0'),
        'format', coalesce(r -> 'format', '"gif"'),
        'animations', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'kind', f.kind,
                'bytes', coalesce(r -> (f.kind || '_bytes'), '0'),
                'frame_count', coalesce(r -> (f.kind || '_frame_count'), '0'),
                'size', coalesce(r -> (f.kind || '_size'), '[0, 0]'),
                'reductions', coalesce(r -> (f.kind || '_reductions'), '[]'),
                'bitrate', coalesce(r -> (f.kind || '_bitrate'), 'null')) ORDER BY f.n)
            FROM jsonb_array_elements_text(coalesce(r -> 'files', '["gif"]')) WITH ORDINALITY AS f(kind, n)), '[]'),
        'mp4_error', coalesce(r -> 'mp4_error', 'null'),
        'budget', coalesce(r -> 'budget', r -> 'gif_budget', '0'),
        'sheet_bytes', coalesce(r -> 'sheet_bytes', '0'),
        'frame_size', coalesce(r -> 'frame_size', '[0, 0]'),
        'model', coalesce(r -> 'model', 'null'),
        'unet_evals', coalesce(r -> 'unet_evals', 'null'),
        'reconstruction', '[]'::jsonb,
        'version', 1)::text
    FROM (SELECT jobs.result::jsonb AS r) AS old)
WHERE result IS NOT NULL AND NOT (result::jsonb ? 'version');

UPDATE jobs SET token = substr(md5(random()::text), 1, 8) WHERE token IS NULL;
UPDATE jobs SET artifact_dir = id::text WHERE artifact_dir LIKE '%/%';
UPDATE jobs SET output_format = 'gif' WHERE output_format IS NULL;
UPDATE jobs SET request = ((
        CASE WHEN jsonb_array_length(coalesce(request::jsonb -> 'prompts', '[]')) = 0
             THEN jsonb_set(request::jsonb, '{prompts}',
                            jsonb_build_array(request::jsonb ->> 'prompt_a', request::jsonb ->> 'prompt_b'))
             ELSE request::jsonb END) - 'prompt_a' - 'prompt_b')::text
WHERE request::jsonb ? 'prompt_a' OR request::jsonb ? 'prompt_b';

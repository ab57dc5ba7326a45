-- As migrations/sqlite/0012_result_notices.sql.

UPDATE jobs SET result = (old.r || jsonb_build_object(
    'warnings', coalesce((
        SELECT jsonb_agg(n ORDER BY i) FROM (
            SELECT w.i, CASE
                WHEN m.neg IS NOT NULL THEN jsonb_build_object('code', 'negative_unused', 'facts',
                    jsonb_build_object('guidance', m.neg[1]::float8))
                WHEN m.cut IS NOT NULL THEN jsonb_build_object('code', 'prompt_truncated', 'facts',
                    jsonb_build_object('what', m.cut[1], 'limit', m.cut[2]::int, 'dropped', m.cut[3]))
            END AS n
            FROM jsonb_array_elements_text(old.r -> 'warnings') WITH ORDINALITY AS w(t, i),
                 LATERAL (SELECT regexp_match(w.t, '^The negative prompt was not used: at guidance (\S+) this model ') AS neg,
                                 regexp_match(w.t, '^The (.+?) is longer than CLIP''s (\d+) tokens; these words were dropped: (.*)$')
                                     AS cut) AS m) AS x
        WHERE n IS NOT NULL), '[]'::jsonb),
    'animations', coalesce((
        SELECT jsonb_agg(a.v || jsonb_build_object('reductions', coalesce((
            SELECT jsonb_agg(n ORDER BY i) FROM (
                SELECT r.i, CASE
                    WHEN m.size IS NOT NULL THEN jsonb_build_object('code', 'reduced_size', 'facts',
                        jsonb_build_object('before', m.size[1], 'after', m.size[2]))
                    WHEN m.palette IS NOT NULL THEN jsonb_build_object('code', 'reduced_palette', 'facts',
                        jsonb_build_object('before', m.palette[1]::int, 'after', m.palette[2]::int))
                    WHEN m.frames IS NOT NULL THEN jsonb_build_object('code', 'reduced_frames', 'facts',
                        jsonb_build_object('before', m.frames[1]::int, 'after', m.frames[2]::int))
                    WHEN m.bitrate IS NOT NULL THEN jsonb_build_object('code', 'reduced_bitrate', 'facts',
                        jsonb_build_object('kbits', replace(m.bitrate[1], ',', '')::int))
                END AS n
                FROM jsonb_array_elements_text(a.v -> 'reductions') WITH ORDINALITY AS r(t, i),
                     LATERAL (SELECT regexp_match(r.t, '^size (\S+)→(\S+)$') AS size,
                                     regexp_match(r.t, '^palette (\d+)→(\d+)$') AS palette,
                                     regexp_match(r.t, '^frames (\d+)→(\d+)$') AS frames,
                                     regexp_match(r.t, '^bitrate ([\d,]+) kbit/s$') AS bitrate) AS m) AS y
            WHERE n IS NOT NULL), '[]'::jsonb)) ORDER BY a.k)
        FROM jsonb_array_elements(old.r -> 'animations') WITH ORDINALITY AS a(v, k)), '[]'::jsonb),
    'version', 2))::text
FROM (SELECT id, result::jsonb AS r FROM jobs WHERE result IS NOT NULL AND result::jsonb ->> 'version' = '1') AS old
WHERE jobs.id = old.id;

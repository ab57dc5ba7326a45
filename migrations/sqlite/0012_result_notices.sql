-- A result's warnings and its animations' reductions are stored as the engine's notices (code and facts,
-- morph.request.NOTICES; bot/result.py version 2) instead of English sentences, so every front words them in
-- the job's language. The sentences version 1 held are the notices' English forms, which this parses back.

UPDATE jobs SET result = json_set(result,
    '$.warnings', json((
        SELECT json_group_array(json(n)) FROM (
            SELECT CASE
                WHEN w.value LIKE 'The negative prompt was not used: at guidance % this model %' THEN json_object(
                    'code', 'negative_unused', 'facts', json_object(
                        'guidance', CAST(substr(w.value, 47, instr(w.value, ' this model') - 47) AS REAL)))
                WHEN w.value LIKE 'The % is longer than CLIP''s % tokens; these words were dropped: %' THEN json_object(
                    'code', 'prompt_truncated', 'facts', json_object(
                        'what', substr(w.value, 5, instr(w.value, ' is longer than') - 5),
                        'limit', CAST(substr(w.value, instr(w.value, 'CLIP''s ') + 7,
                                             instr(w.value, ' tokens;') - instr(w.value, 'CLIP''s ') - 7) AS INTEGER),
                        'dropped', substr(w.value, instr(w.value, 'were dropped: ') + 14)))
            END AS n
            FROM json_each(jobs.result, '$.warnings') AS w ORDER BY w.key)
        WHERE n IS NOT NULL)),
    '$.animations', json((
        SELECT json_group_array(json_set(a.value, '$.reductions', json((
            SELECT json_group_array(json(n)) FROM (
                SELECT CASE
                    WHEN r.value LIKE 'size %→%' THEN json_object('code', 'reduced_size', 'facts', json_object(
                        'before', substr(r.value, 6, instr(r.value, '→') - 6),
                        'after', substr(r.value, instr(r.value, '→') + 1)))
                    WHEN r.value LIKE 'palette %→%' THEN json_object('code', 'reduced_palette', 'facts', json_object(
                        'before', CAST(substr(r.value, 9, instr(r.value, '→') - 9) AS INTEGER),
                        'after', CAST(substr(r.value, instr(r.value, '→') + 1) AS INTEGER)))
                    WHEN r.value LIKE 'frames %→%' THEN json_object('code', 'reduced_frames', 'facts', json_object(
                        'before', CAST(substr(r.value, 8, instr(r.value, '→') - 8) AS INTEGER),
                        'after', CAST(substr(r.value, instr(r.value, '→') + 1) AS INTEGER)))
                    WHEN r.value LIKE 'bitrate % kbit/s' THEN json_object('code', 'reduced_bitrate', 'facts', json_object(
                        'kbits', CAST(replace(substr(r.value, 9, instr(r.value, ' kbit/s') - 9), ',', '') AS INTEGER)))
                END AS n
                FROM json_each(a.value, '$.reductions') AS r ORDER BY r.key)
            WHERE n IS NOT NULL))))
        FROM (SELECT value FROM json_each(jobs.result, '$.animations') ORDER BY key) AS a)),
    '$.version', 2)
WHERE result IS NOT NULL AND result ->> '$.version' = 1;

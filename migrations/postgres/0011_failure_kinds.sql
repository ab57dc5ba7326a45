-- As migrations/sqlite/0011_failure_kinds.sql.
UPDATE jobs SET error = '{"failure": "out_of_memory"}'
    WHERE error = 'the GPU ran out of memory on this morph; try fewer frames or a smaller size.';
UPDATE jobs SET error = '{"failure": "renderer"}'
    WHERE error = 'the renderer failed on the bot''s side (the details are in the bot''s log).';
UPDATE jobs SET error = '{"attempts": 3, "failure": "crashed"}'
    WHERE error = 'the renderer crashed 3 times on this job';
UPDATE jobs SET error = '{"failure": "model_load"}'
    WHERE error = 'the bot''s model could not be loaded; the bot''s operator can see why in its log.';
UPDATE jobs SET error = '{"failure": "not_posted"}' WHERE error LIKE 'could not post the result: %';

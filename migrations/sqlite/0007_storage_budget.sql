-- The bytes a rendered job's files take (NULL: a job from before 0007, counted as nothing), so the bot can
-- keep everything stored within MORPH_STORAGE_MAX_GB and each server within its share.
ALTER TABLE jobs ADD COLUMN stored_bytes INTEGER;

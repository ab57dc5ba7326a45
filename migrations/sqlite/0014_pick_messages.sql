-- The message each public pick was posted as (a reply with the frame's picture), so that deleting or hiding the
-- result removes its picks' pictures too. NULL: not posted (yet), or posted before this migration.
ALTER TABLE picks ADD COLUMN message_id INTEGER;

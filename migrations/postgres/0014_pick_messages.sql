-- As migrations/sqlite/0014_pick_messages.sql.
ALTER TABLE picks ADD COLUMN message_id BIGINT;

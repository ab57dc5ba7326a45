-- As migrations/sqlite/0004_formats_and_refine.sql.
ALTER TABLE jobs ADD COLUMN output_format TEXT;
ALTER TABLE jobs ADD COLUMN parent_id BIGINT;
ALTER TABLE jobs ADD COLUMN reply_to_message_id BIGINT;
ALTER TABLE guild_settings ADD COLUMN default_format TEXT;

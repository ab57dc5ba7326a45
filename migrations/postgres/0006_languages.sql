-- As migrations/sqlite/0006_languages.sql.
ALTER TABLE guild_settings ADD COLUMN language TEXT;
ALTER TABLE jobs ADD COLUMN language TEXT;

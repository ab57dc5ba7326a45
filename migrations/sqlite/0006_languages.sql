-- The server's language for the bot's public posts (status, results, picks, errors), set with
-- /morphadmin limits language: ('en', 'ja', … a language of bot/locales; NULL: the server's own
-- preferred locale as Discord sends it).
ALTER TABLE guild_settings ADD COLUMN language TEXT;
-- The language a job's public messages are written in, decided when it is queued (the server's setting,
-- else its preferred locale), so that the worker and delivery need no lookup. NULL: English.
ALTER TABLE jobs ADD COLUMN language TEXT;

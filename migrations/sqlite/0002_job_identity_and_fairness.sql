-- A random token per job (component custom ids and the artifact folder name carry it, so buttons of an
-- old database never act on a new database's job), withdrawn jobs (the bot never answered their /morph:
-- they count for no limit), and round-robin claims across servers.

ALTER TABLE jobs ADD COLUMN token TEXT;            -- 8 hex characters; NULL for jobs made before 0002
ALTER TABLE jobs ADD COLUMN withdrawn_at REAL;     -- set with state 'cancelled' when /morph went unanswered

-- Claims go to the server served longest ago (0 = never): one job per server in turn.
ALTER TABLE guild_settings ADD COLUMN last_claim_seq INTEGER NOT NULL DEFAULT 0;

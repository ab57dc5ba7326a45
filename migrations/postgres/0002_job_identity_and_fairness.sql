-- As migrations/sqlite/0002_job_identity_and_fairness.sql.
ALTER TABLE jobs ADD COLUMN token TEXT;
ALTER TABLE jobs ADD COLUMN withdrawn_at DOUBLE PRECISION;
ALTER TABLE guild_settings ADD COLUMN last_claim_seq INTEGER NOT NULL DEFAULT 0;

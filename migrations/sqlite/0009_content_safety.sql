-- Content safety: the image check's outcome, age-restricted channels, reports.

-- Whether Discord marked the job's channel age-restricted (a thread: its parent) when /morph was used.
ALTER TABLE jobs ADD COLUMN channel_nsfw INTEGER NOT NULL DEFAULT 0;
-- The safety check's outcome (JSON: checked, flagged, withheld frame indices, unfiltered, seconds).
ALTER TABLE jobs ADD COLUMN safety TEXT;
-- When the result was hidden because of reports (its message deleted; the audit log keeps why).
ALTER TABLE jobs ADD COLUMN hidden_at REAL;

-- Whether an admin allows unfiltered results in this server's age-restricted channels (default: no).
ALTER TABLE guild_settings ADD COLUMN nsfw_allow INTEGER NOT NULL DEFAULT 0;
-- Hide a result automatically after this many reports (NULL: never).
ALTER TABLE guild_settings ADD COLUMN report_hide_after INTEGER;

-- A new final state, 'withheld': the safety filter kept the whole result from the channel (its files are
-- deleted). SQLite cannot alter a CHECK constraint; the table's stored definition is edited in place (the
-- documented way for a change that leaves the rows' format as it is), after the ALTER TABLEs above (they
-- edit the same text). The CREATE TABLE below, in the same transaction, moves the schema cookie on, so
-- every open connection reads the new definition.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql, '''failed'', ''cancelled'')', '''failed'', ''cancelled'', ''withheld'')')
 WHERE type = 'table' AND name = 'jobs';
PRAGMA writable_schema = RESET;  -- off, and this connection reads the new definition at once

CREATE TABLE reports (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,                     -- who reported
    created_at REAL    NOT NULL
);
CREATE UNIQUE INDEX reports_once ON reports (job_id, user_id);
CREATE INDEX reports_guild ON reports (guild_id, id);

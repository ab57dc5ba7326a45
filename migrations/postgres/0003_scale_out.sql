-- As migrations/sqlite/0003_scale_out.sql, plus the artifacts table: on PostgreSQL a job's files travel
-- through the database, so a render worker on another machine needs nothing but the database URL.
ALTER TABLE jobs ADD COLUMN run_id TEXT;
ALTER TABLE jobs ADD COLUMN progress TEXT;
ALTER TABLE jobs ADD COLUMN failure_shown_at DOUBLE PRECISION;

CREATE TABLE interactions (
    id         BIGINT PRIMARY KEY,
    handled_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX interactions_handled ON interactions (handled_at);

CREATE UNIQUE INDEX picks_once ON picks (job_id, user_id, frame);

CREATE TABLE artifacts (
    job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name   TEXT   NOT NULL,          -- morph.gif, sheet.png, frame_000.png, ...
    data   BYTEA  NOT NULL,
    PRIMARY KEY (job_id, name)
);

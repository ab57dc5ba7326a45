-- morph bot: the job queue, per-guild settings, bans, picks and the admin audit log.
-- Times are Unix seconds (REAL). Discord ids are INTEGER (64-bit snowflakes fit).

CREATE TABLE jobs (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id               INTEGER NOT NULL,
    channel_id             INTEGER NOT NULL,
    user_id                INTEGER NOT NULL,
    -- queued -> running -> rendered -> delivered; or failed / cancelled
    state                  TEXT    NOT NULL DEFAULT 'queued'
                           CHECK (state IN ('queued', 'running', 'rendered', 'delivered', 'failed', 'cancelled')),
    request                TEXT    NOT NULL,           -- RenderRequest as JSON
    boomerang              INTEGER NOT NULL DEFAULT 0, -- GIF plays forward then back
    attempts               INTEGER NOT NULL DEFAULT 0, -- renders started that did not finish (crashes)
    error                  TEXT,                       -- user-facing reason (failed) or last delivery error
    created_at             REAL    NOT NULL,
    started_at             REAL,
    rendered_at            REAL,
    delivered_at           REAL,
    finished_at            REAL,                       -- when it became failed / cancelled
    heartbeat_at           REAL,                       -- last sign of life from the rendering worker
    worker_id              TEXT,
    cancelled_by           INTEGER,
    status_message_id      INTEGER,                    -- the "queued / rendering 40 %" message
    result_message_id      INTEGER,                    -- the message with the GIF
    interaction_token      TEXT,
    interaction_expires_at REAL,                       -- tokens live 15 minutes
    application_id         INTEGER,
    upload_limit           INTEGER NOT NULL,           -- bytes the guild accepts per message
    result                 TEXT,                       -- JSON: ts, distances, midpoint, candidates, ...
    artifact_dir           TEXT,
    artifacts_purged_at    REAL,                       -- files deleted (retention or delete button)
    deleted_at             REAL,                       -- result deleted by its author or an admin
    delivery_attempts      INTEGER NOT NULL DEFAULT 0,
    next_delivery_at       REAL                        -- NULL: deliver now
);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_guild_user ON jobs (guild_id, user_id, state);
CREATE INDEX jobs_guild_state ON jobs (guild_id, state);

-- Per-guild overrides; NULL columns fall back to the bot's Settings.
CREATE TABLE guild_settings (
    guild_id          INTEGER PRIMARY KEY,
    paused            INTEGER NOT NULL DEFAULT 0,
    max_user_active   INTEGER,
    max_guild_queue   INTEGER,
    cooldown_s        REAL,
    max_frames        INTEGER,
    banned_words      TEXT    NOT NULL DEFAULT '[]',  -- JSON list of words/phrases
    allowed_channels  TEXT    NOT NULL DEFAULT '[]',  -- JSON list of channel ids; empty = every channel
    updated_at        REAL
);

CREATE TABLE bans (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    actor_id   INTEGER NOT NULL,
    created_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE picks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL,
    frame      INTEGER NOT NULL,                     -- 0-based index into the rendered frames
    source     TEXT    NOT NULL,                     -- button / select / reaction
    created_at REAL    NOT NULL
);
CREATE INDEX picks_job ON picks (job_id);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id   INTEGER,                              -- NULL: a bot-wide action by an owner
    actor_id   INTEGER NOT NULL,
    action     TEXT    NOT NULL,
    detail     TEXT    NOT NULL DEFAULT '',
    created_at REAL    NOT NULL
);
CREATE INDEX audit_guild ON audit_log (guild_id, id);

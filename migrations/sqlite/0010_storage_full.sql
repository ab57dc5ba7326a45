-- A render worker whose last job's files found no room (disk or database full, nothing left to expire): it
-- renders nothing until there is room, and /morphadmin stats says so. One row per worker; gone once it
-- stores a job again.
CREATE TABLE storage_full (
    worker_id  TEXT PRIMARY KEY,
    since      REAL NOT NULL,
    needed     INTEGER NOT NULL,
    retry_at   REAL
);

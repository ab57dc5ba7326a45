-- Scale-out: render workers in other processes (or machines) report through the database, and Discord
-- fronts on one shard deduplicate the events they all receive.

-- A worker claims as worker_id (MORPH_WORKER_ID) plus run_id (new at every start); before, both were
-- one string "worker/run".
ALTER TABLE jobs ADD COLUMN run_id TEXT;
UPDATE jobs SET run_id = substr(worker_id, instr(worker_id, '/') + 1),
                worker_id = substr(worker_id, 1, instr(worker_id, '/') - 1)
 WHERE instr(worker_id, '/') > 0;
-- The worker's latest progress as JSON (stage, frames, step, fraction, ETA); the front shows it.
ALTER TABLE jobs ADD COLUMN progress TEXT;
-- When a front told Discord that the job failed (every failure is told once, by one front).
ALTER TABLE jobs ADD COLUMN failure_shown_at REAL;
UPDATE jobs SET failure_shown_at = COALESCE(finished_at, created_at) WHERE state = 'failed';

-- Discord interactions a front has taken on: the first front to record one answers it, the others stay
-- silent (several sessions on one shard, a gateway resume replaying an event).
CREATE TABLE interactions (
    id         INTEGER PRIMARY KEY,
    handled_at REAL NOT NULL
);
CREATE INDEX interactions_handled ON interactions (handled_at);

-- One pick per person, job and frame (a repeat is answered privately and not recorded).
DELETE FROM picks WHERE id NOT IN (SELECT MIN(id) FROM picks GROUP BY job_id, user_id, frame);
CREATE UNIQUE INDEX picks_once ON picks (job_id, user_id, frame);

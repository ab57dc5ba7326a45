-- Pictures members upload for /morph-images: stored with the job, in the same transaction as the job itself
-- (a worker never claims a picture morph whose pictures are not there yet), and read by whichever worker
-- renders it. Removed with the job's files at the retention purge or when its result is deleted.
CREATE TABLE uploads (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    slot   INTEGER NOT NULL,                 -- which end: 0 = the first picture, 1 = the second
    data   BLOB    NOT NULL,                 -- the file as uploaded (checked: PNG, JPEG, WebP or GIF)
    PRIMARY KEY (job_id, slot)
);

-- Background jobs (backfills): every progress update is a new version of the job's row, so
-- the newest state wins and a restarted process resumes from the persisted cursor.

CREATE TABLE IF NOT EXISTS jobs
(
    id               String,
    project_id       LowCardinality(String),
    kind             LowCardinality(String),
    params           String,
    status           LowCardinality(String),
    rows_processed   UInt64,
    rows_total       UInt64,
    cursor           String,
    snapshot_at      Nullable(DateTime64(6, 'UTC')),
    created_at       DateTime64(6, 'UTC'),
    started_at       Nullable(DateTime64(6, 'UTC')),
    run_started_at   Nullable(DateTime64(6, 'UTC')),
    run_rows_start   UInt64,
    finished_at      Nullable(DateTime64(6, 'UTC')),
    updated_at       DateTime64(6, 'UTC'),
    error            String
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY id;

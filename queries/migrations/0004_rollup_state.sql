-- Rollup bookkeeping: the pass cursor, the committed version of every (project, hour) bucket,
-- the per-trace memory of which hours a trace last contributed to, and a per-pass scratch
-- list of dirty traces. All small: one row per bucket, per trace, or per pass.

CREATE TABLE IF NOT EXISTS rollup_state
(
    name    String,
    cursor  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(cursor)
ORDER BY name;

CREATE TABLE IF NOT EXISTS rollup_bucket_versions
(
    project_id  LowCardinality(String),
    hour        DateTime('UTC'),
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, hour);

CREATE TABLE IF NOT EXISTS rollup_trace_hours
(
    project_id     LowCardinality(String),
    trace_id       String,
    hours          Array(DateTime('UTC')),
    current_hours  Array(DateTime('UTC')),
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project_id, trace_id);

CREATE TABLE IF NOT EXISTS rollup_dirty_traces
(
    pass        UInt64,
    project_id  LowCardinality(String),
    trace_id    String,
    created_at  DateTime('UTC') DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY toDate(created_at)
ORDER BY (pass, project_id, trace_id)
TTL created_at + INTERVAL 2 DAY
SETTINGS ttl_only_drop_parts = 1;

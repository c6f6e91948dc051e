-- Rollups' reverse index, bucket → traces: which traces have (or recently had) observations
-- starting in each (project, hour). A recompute of a bucket reads only these traces' rows by
-- primary key instead of scanning all of history for one hour. One row per (bucket, trace);
-- a trace that left an hour is tombstoned (is_deleted = 1) under the version of the pass
-- that saw it leave, so the newest read of each trace wins (FINAL hides the tombstones).

CREATE TABLE IF NOT EXISTS rollup_hour_traces
(
    project_id  LowCardinality(String),
    hour        DateTime('UTC'),
    trace_id    String,
    version     UInt64,
    is_deleted  UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (project_id, hour, trace_id);

-- Databases whose passes ran before this table existed: derive the index from the per-trace
-- memory (one row per trace) under each memory row's own version, so the next recompute of
-- any bucket still finds every trace in it. Re-running it writes the same rows again.
INSERT INTO rollup_hour_traces (project_id, hour, trace_id, version, is_deleted)
SELECT project_id, hour, trace_id, version, toUInt8(NOT has(current_hours, hour))
FROM rollup_trace_hours FINAL
ARRAY JOIN hours AS hour;

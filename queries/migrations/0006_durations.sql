-- Named durations: user definitions, the traces they are materialized for, and the results.
-- Every table is upsert-by-key (ReplacingMergeTree on a version, soft delete via is_deleted),
-- so recomputing a trace (a new revision, a backfill, a replayed chunk) replaces its rows.

-- One row per (project, name); `version` counts edits so stored results can name the
-- definition they were computed from. A deleted definition keeps its tombstone so a
-- re-created one continues the version sequence.
CREATE TABLE IF NOT EXISTS duration_definitions
(
    project_id   LowCardinality(String),
    name         String,
    version      UInt32,
    spec         String,
    created_at   DateTime64(6, 'UTC'),
    updated_at   DateTime64(6, 'UTC'),
    is_deleted   UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (project_id, name);

-- Every concluded (project, trace) with its latest conclusion revision and start time: the
-- key space a definition backfill pages through, in primary-key order.
CREATE TABLE IF NOT EXISTS duration_traces
(
    project_id     LowCardinality(String),
    trace_id       String,
    revision       UInt32,
    trace_time     DateTime64(3, 'UTC'),
    registered_at  DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(registered_at)
ORDER BY (project_id, trace_id);

-- The materialized result per (project, trace, definition): read by
-- GET /v1/traces/{id}/durations as one primary-key range.
CREATE TABLE IF NOT EXISTS trace_durations
(
    project_id          LowCardinality(String),
    trace_id            String,
    definition          String,
    definition_version  UInt32,
    revision            UInt32,
    trace_time          DateTime64(3, 'UTC'),
    duration_ms         Nullable(Float64),
    start_time          Nullable(DateTime64(3, 'UTC')),
    end_time            Nullable(DateTime64(3, 'UTC')),
    reason              String,
    skewed              UInt8,
    computed_at         DateTime64(6, 'UTC'),
    is_deleted          UInt8
)
ENGINE = ReplacingMergeTree(computed_at, is_deleted)
ORDER BY (project_id, trace_id, definition);

-- The same results ordered by (project, definition, hour of the trace's start) so
-- per-definition stats over a time range read only that range. When a revision moves a
-- trace to another hour, the writer tombstones the row at the old key, keeping it exact.
CREATE TABLE IF NOT EXISTS trace_durations_by_hour
(
    project_id          LowCardinality(String),
    definition          String,
    hour                DateTime('UTC'),
    trace_id            String,
    definition_version  UInt32,
    trace_time          DateTime64(3, 'UTC'),
    duration_ms         Nullable(Float64),
    skewed              UInt8,
    missing             UInt8,
    computed_at         DateTime64(6, 'UTC'),
    is_deleted          UInt8
)
ENGINE = ReplacingMergeTree(computed_at, is_deleted)
ORDER BY (project_id, definition, hour, trace_id);

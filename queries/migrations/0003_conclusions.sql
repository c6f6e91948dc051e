-- Conclusions: the durable record of every concluded trace, its delivery outbox, and the
-- detector's per-shard cursor. A conclusion is written here before any delivery is tried.
--
-- conclusions: one row per (project, trace, revision), newest updated_at wins. Revisions are
-- immutable facts (concluded_at, last_activity_at, summary); only the delivery columns change.
-- Partitioned by month of concluded_at (stable per key) so the feed's `since` prunes parts.
CREATE TABLE IF NOT EXISTS conclusions
(
    project_id        LowCardinality(String),
    trace_id          String,
    revision          UInt32,
    concluded_at      DateTime64(6, 'UTC'),
    last_activity_at  DateTime64(6, 'UTC'),
    summary           String,
    status            LowCardinality(String),
    attempts          UInt16,
    next_attempt_at   Nullable(DateTime64(6, 'UTC')),
    last_error        String,
    delivered_at      Nullable(DateTime64(6, 'UTC')),
    updated_at        DateTime64(6, 'UTC'),
    INDEX idx_concluded concluded_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY toYYYYMM(concluded_at)
ORDER BY (project_id, trace_id, revision);

-- conclusion_outbox: only deliveries still open (pending, or dead awaiting a redrive). A
-- delivered row is replaced by a tombstone (is_deleted = 1) that FINAL hides and cleanup
-- merges remove, so the delivery scan reads the open work, never the history of deliveries.
-- Each row carries the whole payload, so a delivery needs no join back to `conclusions`.
CREATE TABLE IF NOT EXISTS conclusion_outbox
(
    project_id        LowCardinality(String),
    trace_id          String,
    revision          UInt32,
    concluded_at      DateTime64(6, 'UTC'),
    last_activity_at  DateTime64(6, 'UTC'),
    summary           String,
    status            LowCardinality(String),
    attempts          UInt16,
    next_attempt_at   DateTime64(6, 'UTC'),
    last_error        String,
    updated_at        DateTime64(6, 'UTC'),
    is_deleted        UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (project_id, trace_id, revision)
SETTINGS allow_experimental_replacing_merge_with_cleanup = 1,
         enable_replacing_merge_with_cleanup_for_min_age_to_force_merge = 1,
         min_age_to_force_merge_seconds = 600;

-- conclusion_cursors: per (shard_count, shard_index), every trace whose last activity is at or
-- before `cursor` has been handled. Keyed by the shard count too: re-sharding starts fresh
-- cursors (a one-off scan of the activity TTL window) instead of trusting another layout's.
CREATE TABLE IF NOT EXISTS conclusion_cursors
(
    shard_count  UInt16,
    shard_index  UInt16,
    cursor       DateTime64(6, 'UTC'),
    updated_at   DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (shard_count, shard_index);

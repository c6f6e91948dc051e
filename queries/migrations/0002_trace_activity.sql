-- Trace activity: one row per (trace, insert block) with the block's last ingested_at, fed by
-- materialized views on both raw tables. Ordered and partitioned by ingestion time so the
-- conclusion detector and the rollup job read only a recent window: their cost follows the
-- write rate, not the size of history. The TTL drops whole day partitions after 30 days.

CREATE TABLE IF NOT EXISTS trace_activity
(
    project_id   LowCardinality(String),
    trace_id     String,
    ingested_at  DateTime64(6, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toDate(ingested_at)
ORDER BY (ingested_at, project_id, trace_id)
TTL toDateTime(ingested_at) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS trace_activity_from_observations
TO trace_activity
AS SELECT project_id, trace_id, max(ingested_at) AS ingested_at
FROM observations
GROUP BY project_id, trace_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS trace_activity_from_traces
TO trace_activity
AS SELECT project_id, id AS trace_id, max(ingested_at) AS ingested_at
FROM traces
GROUP BY project_id, trace_id;

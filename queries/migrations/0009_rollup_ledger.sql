-- Rollups as a per-trace contribution ledger. A pass (or a backfill chunk) brings a bounded set
-- of traces up to date in ONE insert: what the traces' live rows contribute now, minus what the
-- ledger already holds for them, rows that cancel to zero dropped. The same insert carries the
-- change aggregated into every bucket view the reads use, so a reader never sees a trace's
-- rows without the buckets that add them up (one insert of one block is one part).
--
-- rollup_ledger, one SummingMergeTree for both row families, told apart by `view`:
--   * view 'trace': one row per (trace, kind, hour, model, provider, type, name, environment),
--     what that trace contributes there. Read only by primary key (project_id, 'trace',
--     trace_id) when the trace changes again.
--   * bucket views: the same sums with trace_id = '' per hour ('hour_*') or UTC day ('day_*')
--     and grouping ('hour'/'day' = every key, '*_model', '*_name', '*_total'), so a read is
--     one primary-key range of (project_id, view, '', kind, hour).
-- The latency histogram is sparse, `histMap.slot` (log bucket) / `histMap.count`, summed by
-- slot on merges (SummingMergeTree's *Map convention); a read concatenates a range's
-- histograms and walks them in bucket order (queries/rollups/percentiles.sql).
-- kind 'observation' rows count observations (usage and observation latency); kind 'trace'
-- rows count traces (trace latency: last end - first start, bucketed by first start).
-- Every metric is an exact integer: tokens, whole milliseconds, and cost in units of 1e-12
-- (`cost_pico`, the float cost rounded once per observation), so a retraction cancels
-- exactly. Rows that sum to zero stay as zero rows (a SummingMergeTree with a *Map column
-- keeps them); reads skip them.
CREATE TABLE IF NOT EXISTS rollup_ledger
(
    project_id       LowCardinality(String),
    view             Enum8('trace' = 0, 'hour' = 1, 'day' = 2, 'hour_model' = 3, 'day_model' = 4,
                           'hour_name' = 5, 'day_name' = 6, 'hour_total' = 7, 'day_total' = 8),
    trace_id         String,
    kind             Enum8('observation' = 1, 'trace' = 2),
    hour             DateTime('UTC'),
    model            LowCardinality(String),
    provider         LowCardinality(String),
    type             LowCardinality(String),
    name             String,
    environment      LowCardinality(String),
    n                Int64,
    input_tokens     Int64,
    output_tokens    Int64,
    cost_pico        Int128,
    errors           Int64,
    sum_ms           Int64,
    orphans          Int64,
    skewed           Int64,
    `histMap.slot`   Array(Int16),
    `histMap.count`  Array(Int64)
)
ENGINE = SummingMergeTree
ORDER BY (project_id, view, trace_id, kind, hour, model, provider, type, name, environment)
SETTINGS index_granularity = 1024;

-- The traces one pass or one backfill job brings up to date, staged once so every chunk reads
-- its keys by primary key (no key list ever travels in a statement). Two days of scratch (a
-- backfill paused longer stages its range again).
CREATE TABLE IF NOT EXISTS rollup_batches
(
    batch       UInt64,
    project_id  LowCardinality(String),
    trace_id    String,
    created_at  DateTime('UTC') DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY toDate(created_at)
ORDER BY (batch, project_id, trace_id)
TTL created_at + INTERVAL 2 DAY
SETTINGS ttl_only_drop_parts = 1;

-- An upgraded database has history but an empty ledger: queue one rollups backfill over all
-- of it (paced, resumable, visible in /v1/jobs), and start the passes' watermark an hour
-- before now, so passes take what changes from here on and the first one does not redo 30
-- days of activity the backfill covers. A fresh database has no rows and gets neither: its
-- first pass takes all the activity there is. The fixed job id makes a re-run of this
-- migration write the same job again, not a second one.
INSERT INTO jobs
    (id, project_id, kind, params, status, rows_processed, rows_total, cursor, snapshot_at,
     created_at, started_at, run_started_at, run_rows_start, finished_at, updated_at, error)
SELECT 'rollups-ledger-0009', '', 'rollups.backfill',
       '{"from":null,"to":null,"batch_size":2000}', 'queued', 0, 0, '{}', NULL,
       now64(6), NULL, NULL, 0, NULL, now64(6), ''
FROM system.one
WHERE (SELECT count() FROM observations) > 0;

INSERT INTO rollup_state (name, cursor)
SELECT 'rollups.ledger', now64(6) - INTERVAL 1 HOUR
FROM system.one
WHERE (SELECT count() FROM observations) > 0;

-- The bucket-recompute design's tables: versions, per-trace hour memory, the bucket -> trace
-- index, per-pass scratch and the versioned rollups themselves. The ledger replaces them all.
DROP TABLE IF EXISTS usage_rollup;

DROP TABLE IF EXISTS latency_rollup;

DROP TABLE IF EXISTS rollup_bucket_versions;

DROP TABLE IF EXISTS rollup_trace_hours;

DROP TABLE IF EXISTS rollup_hour_traces;

DROP TABLE IF EXISTS rollup_dirty_traces;

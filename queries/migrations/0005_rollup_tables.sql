-- Usage and latency rollups: one table per metric holding hourly rows and their daily merges
-- (`daily`), so any read (whole days from daily rows, edge hours from hourly ones) is ONE
-- primary-key range scan. Every recompute of a bucket writes a complete new set of rows
-- stamped with a fresh `version`; publishing it inserts a `published` marker row (zero
-- metrics, empty keys) of that version into the same table (one per level for latency), so a
-- reader keeps, per (daily, bucket), the rows of the highest published version without
-- joining a second table. `version` is in the sort key so no merge can fold an unpublished
-- row into a published one; stale versions (rows and markers) are deleted after publishing.
-- Latency percentiles come from `histogram`, a dense array of counts per logarithmic bucket
-- (DDSketch's mapping with relative accuracy 0.01: element 1 holds 0 ms, element i + 2 holds
-- (g^(i-1), g^i] ms with g = 1.01/0.99), merged exactly by sumForEach — about twice as fast
-- as sumMap over a Map — so any range's percentiles are within 1% (relative).
-- Both rollups are also stored pre-merged per `grouping`, written by the same GROUPING SETS
-- insert as the full rows: usage 0 = every key, 1 = model only, 2 = totals; observation
-- latency 0 = name, model, provider, type, 1 = name only, 2 = totals (trace latency: 0 =
-- name). A read takes the coarsest grouping holding its keys, so the common dashboard
-- queries (usage by model, latency by name) merge 5-30x fewer rows and histograms. Small granules: a 30-day read of one
-- level and grouping decompresses only its own histograms.

CREATE TABLE IF NOT EXISTS usage_rollup
(
    project_id     LowCardinality(String),
    grouping       UInt8,
    daily          Bool,
    bucket         DateTime('UTC'),
    version        UInt64,
    published      Bool DEFAULT false,
    model          LowCardinality(String),
    provider       LowCardinality(String),
    type           LowCardinality(String),
    name           String,
    environment    LowCardinality(String),
    observations   UInt64,
    input_tokens   UInt64,
    output_tokens  UInt64,
    total_tokens   UInt64,
    cost           Float64,
    errors         UInt64
)
ENGINE = MergeTree
ORDER BY (project_id, grouping, daily, bucket, version, published, model, provider, type, name, environment)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS latency_rollup
(
    project_id  LowCardinality(String),
    level       LowCardinality(String),
    grouping    UInt8,
    daily       Bool,
    bucket      DateTime('UTC'),
    version     UInt64,
    published   Bool DEFAULT false,
    name        String,
    model       LowCardinality(String),
    provider    LowCardinality(String),
    type        LowCardinality(String),
    count       UInt64,
    sum_ms      Float64,
    max_ms      Float64,
    orphans     UInt64,
    skewed      UInt64,
    histogram   Array(UInt64)
)
ENGINE = MergeTree
ORDER BY (project_id, level, grouping, daily, bucket, version, published, name, model, provider, type)
SETTINGS index_granularity = 256;

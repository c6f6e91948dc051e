-- Log a recompute's version per (project, hour) for the write path (daily recomputes merge only hourly rows of each hour's highest logged version; ReplacingMergeTree keeps the highest, so a late older pass cannot win).
INSERT INTO rollup_bucket_versions (project_id, hour, version)
SELECT tupleElement(b, 1), tupleElement(b, 2), {version:UInt64}
FROM (SELECT arrayJoin({buckets:Array(Tuple(String, DateTime('UTC')))}) AS b)

-- Publish a usage recompute to readers: one marker row per (project, grouping, bucket) at this version; readers keep each bucket's highest published version (a late older pass cannot win).
INSERT INTO usage_rollup (project_id, grouping, daily, bucket, version, published)
SELECT tupleElement(b, 1), grouping, {daily:Bool}, tupleElement(b, 2), {version:UInt64}, true
FROM (SELECT arrayJoin({buckets:Array(Tuple(String, DateTime('UTC')))}) AS b)
ARRAY JOIN [0, 1, 2] AS grouping

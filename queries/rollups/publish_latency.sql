-- Publish a latency recompute to readers: one marker row per (project, level, grouping, bucket) at this version; readers keep each bucket's highest published version.
INSERT INTO latency_rollup (project_id, level, grouping, daily, bucket, version, published)
SELECT tupleElement(b, 1), tupleElement(g, 1), tupleElement(g, 2), {daily:Bool}, tupleElement(b, 2),
       {version:UInt64}, true
FROM (SELECT arrayJoin({buckets:Array(Tuple(String, DateTime('UTC')))}) AS b)
ARRAY JOIN [('observation', 0), ('observation', 1), ('observation', 2), ('trace', 0)] AS g

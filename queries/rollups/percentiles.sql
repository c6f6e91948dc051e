-- Fragment (select-list expressions): from `h_sorted`, a histogram as (log bucket, count) pairs in bucket order, holding `s_count` durations, the buckets holding ranks q * (s_count - 1) for p50, p90, p95, p99 and the max (q = 1); service/rollups/sketch.py turns a bucket into its value.
arrayMap(pair -> pair.1, h_sorted) AS h_buckets,
arrayCumSum(arrayMap(pair -> pair.2, h_sorted)) AS h_running,
arrayMap(q -> h_buckets[arrayFirstIndex(c -> c > q * (s_count - 1), h_running)],
         [0.5, 0.9, 0.95, 0.99, 1.0]) AS s_slots

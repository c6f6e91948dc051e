-- Fragment (select-list expressions): from a dense histogram `h` (see dense_histogram) holding `s_count` durations, the positions of the buckets holding ranks q * (s_count - 1) for p50, p90, p95, p99 and the max (q = 1); service/rollups/sketch.py turns a position into its bucket's value.
arrayCumSum(h) AS h_running,
arrayMap(q -> arrayFirstIndex(c -> c > q * (s_count - 1), h_running),
         [0.5, 0.9, 0.95, 0.99, 1.0]) AS s_positions

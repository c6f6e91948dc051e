-- Fragment (select-list expressions): from a dense histogram `h` holding `s_count` measured durations, the positions (see dense_histogram) of the p50/p90/p95/p99 ranks q * (s_count - 1) and of the highest non-empty bucket; service/rollups/sketch.py turns a position into its value.
arrayMap(q -> arrayFirstIndex(c -> c > q * (s_count - 1), arrayCumSum(h)), [0.5, 0.9, 0.95, 0.99]) AS s_positions,
arrayLastIndex(c -> c != 0, h) AS s_top

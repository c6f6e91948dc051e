-- Fragment (select-list expressions): a latency read's per-group stats over its rows (n, sum_ms, orphans, skewed, and `h_running` from the statement's WITH list): count of measured durations, their sum, orphans, skewed and the percentile positions; the same on the ledger and the raw path.
sum(n) AS s_n,
sum(sum_ms) AS s_sum_ms,
sum(orphans) AS s_orphans,
sum(skewed) AS s_skewed,
s_n - s_orphans - s_skewed AS s_count,
{{rollups/percentiles}}

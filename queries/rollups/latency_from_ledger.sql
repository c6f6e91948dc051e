-- Latency per bucket and requested group keys for one project, range and level: ONE primary-key range read of the ledger's bucket rows, in the coarsest view holding the keys; dense histograms merge element-wise (sumForEachMerge), so percentiles over any range are within 1% of the value at their rank.
SELECT bucket, g_name, g_model, g_provider, g_type,
       s_count, s_sum_ms, s_orphans, s_skewed, {{rollups/percentiles}}
FROM
(
    SELECT {{rollups/read_keys}},
           sum(n) AS s_n,
           sum(sum_ms) AS s_sum_ms,
           sum(orphans) AS s_orphans,
           sum(skewed) AS s_skewed,
           sumForEachMerge(hist) AS h,
           arraySum(h) AS s_count
    FROM rollup_ledger
    WHERE {{rollups/ledger_range}}
    GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
    HAVING s_n != 0
)
ORDER BY bucket, g_name, g_model, g_provider, g_type

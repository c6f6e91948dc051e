-- Fragment (a query): latency per bucket and requested group keys from the CTE `source` (rows of hour, model, provider, type, name, environment, n, sum_ms, orphans, skewed and a sparse histogram `slots` / `counts` sorted by slot) that the including statement defines: each row's histogram laid out dense, added element-wise, read at the ranks.
SELECT bucket, g_name, g_model, g_provider, g_type,
       s_count, s_sum_ms, s_orphans, s_skewed, s_positions
FROM
(
    -- Only the positions leave the engine, not the histograms.
    SELECT *, {{rollups/percentiles}}
    FROM
    (
        SELECT {{rollups/read_keys}},
               sum(n) AS s_n,
               sum(sum_ms) AS s_sum_ms,
               sum(orphans) AS s_orphans,
               sum(skewed) AS s_skewed,
               s_n - s_orphans - s_skewed AS s_count,
               sumForEach({{rollups/dense_histogram}}) AS h
        FROM source
        GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
        HAVING s_n != 0
    )
)
ORDER BY bucket, g_name, g_model, g_provider, g_type

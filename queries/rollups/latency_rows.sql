-- Fragment (a query): latency per bucket and requested group keys from the CTE `source` (rows of hour, model, provider, type, name, environment, n, sum_ms, orphans, skewed and a sparse histogram `slots` / `counts`) that the including statement defines: the histograms' entries are summed per log bucket, then walked in bucket order for the percentiles.
SELECT bucket, g_name, g_model, g_provider, g_type,
       s_count, s_sum_ms, s_orphans, s_skewed, {{rollups/percentiles}}
FROM
(
    SELECT bucket, g_model, g_provider, g_type, g_name, g_environment,
           sum(p_n) AS s_n,
           sum(p_sum_ms) AS s_sum_ms,
           sum(p_orphans) AS s_orphans,
           sum(p_skewed) AS s_skewed,
           s_n - s_orphans - s_skewed AS s_count,
           arraySort(groupArray((h_slot, p_count))) AS h_sorted
    FROM
    (
        -- One row per (bucket, keys, log bucket); a source row's other sums count once.
        SELECT {{rollups/read_keys}}, h_slot,
               sum(if(h_index <= 1, n, 0)) AS p_n,
               sum(if(h_index <= 1, sum_ms, 0)) AS p_sum_ms,
               sum(if(h_index <= 1, orphans, 0)) AS p_orphans,
               sum(if(h_index <= 1, skewed, 0)) AS p_skewed,
               sum(h_count) AS p_count
        FROM source
        LEFT ARRAY JOIN slots AS h_slot, counts AS h_count, arrayEnumerate(slots) AS h_index
        GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment, h_slot
    )
    GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
    HAVING s_n != 0
)
ORDER BY bucket, g_name, g_model, g_provider, g_type

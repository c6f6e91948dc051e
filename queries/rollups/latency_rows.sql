-- Fragment (a query): latency per bucket and requested group keys from the CTE `source` (rows of hour, model, provider, type, name, environment, n, sum_ms, orphans, skewed and a sparse histogram `slots` / `counts` sorted by slot) that the including statement defines, with `{{rollups/running_histogram}}` in its WITH list.
SELECT {{rollups/read_keys}}, {{rollups/latency_stats}}
FROM source
GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
HAVING s_n != 0
ORDER BY bucket, g_name, g_model, g_provider, g_type

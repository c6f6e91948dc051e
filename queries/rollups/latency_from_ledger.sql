-- Latency per bucket and requested group keys for one project, range and level: ONE primary-key range read of the ledger's bucket rows, in the coarsest view holding the keys; histograms add per log bucket, so percentiles over any range are within 1% of the value at their rank.
-- One flat SELECT (no CTE, no subquery): the engine's analysis and planning are most of what
-- a read this small costs, and they grow with every level of nesting.
WITH
    `histMap.slot` AS slots,
    `histMap.count` AS counts,
    {{rollups/running_histogram}}
SELECT {{rollups/read_keys}}, {{rollups/latency_stats}}
FROM rollup_ledger
WHERE {{rollups/ledger_range}}
GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
HAVING s_n != 0
ORDER BY bucket, g_name, g_model, g_provider, g_type

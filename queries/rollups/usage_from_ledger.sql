-- Usage per bucket and requested group keys for one project and range: ONE primary-key range read of the ledger's bucket rows, in the coarsest view holding the keys (whole days from the day view, edge hours from the hour view); rows merge by sum.
-- One flat SELECT (no CTE, no subquery): the engine's analysis and planning are most of what
-- a read this small costs, and they grow with every level of nesting.
SELECT {{rollups/read_keys}}, {{rollups/usage_sums}}
FROM rollup_ledger
WHERE {{rollups/ledger_range}}
GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
HAVING s_observations != 0
ORDER BY bucket, g_model, g_provider, g_type, g_name, g_environment

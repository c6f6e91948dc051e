-- Usage per bucket and requested group keys for one project and range: ONE primary-key range read of the ledger's bucket rows, in the coarsest view holding the keys (whole days from the day view, edge hours from the hour view); rows merge by sum.
SELECT {{rollups/read_keys}},
       sum(n) AS s_observations,
       sum(input_tokens) AS s_input_tokens,
       sum(output_tokens) AS s_output_tokens,
       sum(cost_pico) AS s_cost_pico,
       sum(errors) AS s_errors
FROM rollup_ledger
WHERE {{rollups/ledger_range}}
GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
HAVING s_observations != 0
ORDER BY bucket, g_model, g_provider, g_type, g_name, g_environment

-- Fragment (a query): usage per bucket and requested group keys from the CTE `source` (rows of hour, model, provider, type, name, environment, n, input_tokens, output_tokens, cost_pico, errors) that the including statement defines.
SELECT {{rollups/read_keys}},
       sum(n) AS s_observations,
       sum(input_tokens) AS s_input_tokens,
       sum(output_tokens) AS s_output_tokens,
       sum(cost_pico) AS s_cost_pico,
       sum(errors) AS s_errors
FROM source
GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
HAVING s_observations != 0
ORDER BY bucket, g_model, g_provider, g_type, g_name, g_environment

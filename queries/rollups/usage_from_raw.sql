-- Usage computed from live raw rows (the fallback and verification path), with the ledger's own contribution rules: a FINAL scan of the project's observations starting in the range, O(rows in range).
WITH
    live AS
    (
        SELECT project_id, trace_id, start_time, end_time, model, provider, type, name,
               input_tokens, output_tokens, cost, status
        FROM observations FINAL
        WHERE project_id = {project_id:String}
          AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
    ),
    meta AS
    (
        SELECT project_id, id AS trace_id, name, environment
        FROM traces FINAL
        WHERE project_id = {project_id:String}
    )
SELECT {{rollups/read_keys}},
       sum(n) AS s_observations,
       sum(input_tokens) AS s_input_tokens,
       sum(output_tokens) AS s_output_tokens,
       sum(cost_pico) AS s_cost_pico,
       sum(errors) AS s_errors
FROM ({{rollups/contributions}})
WHERE kind = 'observation'
GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
ORDER BY bucket, g_model, g_provider, g_type, g_name, g_environment

-- Usage computed from live raw rows (the fallback and verification path): scans the project's observations in the range with FINAL, O(rows in range). Token sums are UInt128: no range can wrap them.
SELECT
    if({day:Bool}, toStartOfDay(o.start_time, 'UTC'), toStartOfHour(o.start_time, 'UTC')) AS bucket,
    if({by_model:Bool}, o.model, '') AS g_model,
    if({by_provider:Bool}, o.provider, '') AS g_provider,
    if({by_type:Bool}, o.type, '') AS g_type,
    if({by_name:Bool}, o.name, '') AS g_name,
    if({by_environment:Bool}, t.environment, '') AS g_environment,
    count() AS s_observations,
    sum(toUInt128(o.input_tokens)) AS s_input_tokens,
    sum(toUInt128(o.output_tokens)) AS s_output_tokens,
    sum(toUInt128(o.input_tokens) + o.output_tokens) AS s_total_tokens,
    sum(o.cost) AS s_cost,
    countIf(o.status = 'error') AS s_errors
FROM
(
    SELECT trace_id, start_time, model, provider, type, name,
           input_tokens, output_tokens, cost, status
    FROM observations FINAL
    WHERE project_id = {project_id:String}
      AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
) AS o
LEFT JOIN
(
    SELECT id, environment FROM traces FINAL WHERE project_id = {project_id:String}
) AS t ON t.id = o.trace_id
GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
ORDER BY bucket, g_model, g_provider, g_type, g_name, g_environment

-- Usage per bucket (hour or day) and requested group keys for one project and range: ONE (project_id, grouping, daily, bucket) sort-key range scan of usage_rollup, in the coarsest stored grouping holding the requested keys (whole days [dlo, dhi) from daily rows, other hours from hourly ones), keeping per bucket only rows of its highest published version. Token sums are UInt128: no range can wrap them.
SELECT
    if({day:Bool}, toStartOfDay(src, 'UTC'), src) AS bucket,
    if({by_model:Bool}, model, '') AS g_model,
    if({by_provider:Bool}, provider, '') AS g_provider,
    if({by_type:Bool}, type, '') AS g_type,
    if({by_name:Bool}, name, '') AS g_name,
    if({by_environment:Bool}, environment, '') AS g_environment,
    sum(observations) AS s_observations,
    sum(toUInt128(input_tokens)) AS s_input_tokens,
    sum(toUInt128(output_tokens)) AS s_output_tokens,
    sum(toUInt128(total_tokens)) AS s_total_tokens,
    sum(cost) AS s_cost,
    sum(errors) AS s_errors
FROM
(
    SELECT bucket AS src, version, published,
           model, provider, type, name, environment,
           observations, input_tokens, output_tokens, total_tokens, cost, errors,
           -- The bucket's published version: its highest marker (0, i.e. nothing, before one).
           max(if(published, version, 0)) OVER (PARTITION BY daily, bucket) AS current
    FROM usage_rollup
    WHERE project_id = {project_id:String}
      AND grouping = {grouping:UInt8}
      AND ((daily AND bucket >= {dlo:DateTime('UTC')} AND bucket < {dhi:DateTime('UTC')})
           OR (NOT daily
               AND ((bucket >= {lo:DateTime('UTC')} AND bucket < {dlo:DateTime('UTC')})
                    OR (bucket >= {dhi:DateTime('UTC')} AND bucket < {hi:DateTime('UTC')}))))
)
WHERE version = current AND NOT published
GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
ORDER BY bucket, g_model, g_provider, g_type, g_name, g_environment

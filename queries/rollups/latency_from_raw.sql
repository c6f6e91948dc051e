-- Latency computed from live raw rows (fallback and verification), with the ledger's own contribution rules: a FINAL scan of the project's observations starting in the range (level trace: of every trace with one, for its first start and last end), O(rows in range).
WITH
    live AS
    (
        SELECT project_id, trace_id, start_time, end_time, model, provider, type, name,
               input_tokens, output_tokens, cost, status
        FROM observations FINAL
        WHERE project_id = {project_id:String}
          AND (({kind:String} = 'observation'
                AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')})
               OR ({kind:String} = 'trace'
                   AND trace_id IN
                       (
                           SELECT trace_id FROM observations FINAL
                           WHERE project_id = {project_id:String}
                             AND start_time >= {lo:DateTime('UTC')}
                             AND start_time < {hi:DateTime('UTC')}
                       )))
    ),
    meta AS
    (
        SELECT project_id, id AS trace_id, name, environment
        FROM traces FINAL
        WHERE project_id = {project_id:String}
    )
SELECT bucket, g_name, g_model, g_provider, g_type,
       s_count, s_sum_ms, s_orphans, s_skewed, {{rollups/percentiles}}
FROM
(
    SELECT {{rollups/read_keys}},
           sum(sum_ms) AS s_sum_ms,
           sum(orphans) AS s_orphans,
           sum(skewed) AS s_skewed,
           sumMap(slots, counts) AS s_histogram,
           s_histogram.1 AS h_slots,
           s_histogram.2 AS h_counts,
           {{rollups/dense_histogram}} AS h,
           arraySum(h) AS s_count
    FROM ({{rollups/contributions}})
    WHERE kind = {kind:String} AND hour >= {lo:DateTime('UTC')} AND hour < {hi:DateTime('UTC')}
    GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment
)
ORDER BY bucket, g_name, g_model, g_provider, g_type

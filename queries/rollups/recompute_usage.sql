-- Recompute hourly usage rows of the given (project, hour) buckets from live raw rows, per grouping (all keys, model, totals) in one insert, unpublished under a fresh version; rows read by primary key for the traces rollup_hour_traces lists in these buckets (cost ∝ the buckets' traces, not history), then filtered to the hours (exact under FINAL).
INSERT INTO usage_rollup
    (project_id, grouping, daily, bucket, version, model, provider, type, name, environment,
     observations, input_tokens, output_tokens, total_tokens, cost, errors)
SELECT
    o.project_id,
    -- 0: every key, 1: model only, 2: totals (the rolled-up keys read as '').
    toUInt8(grouping(o.model) + grouping(o.name)),
    false,
    toStartOfHour(o.start_time) AS h,
    {version:UInt64},
    o.model,
    o.provider,
    o.type,
    o.name,
    t.environment,
    count(),
    sum(o.input_tokens),
    sum(o.output_tokens),
    sum(o.input_tokens + o.output_tokens),
    sum(o.cost),
    countIf(o.status = 'error')
FROM
(
    SELECT project_id, trace_id, start_time, model, provider, type, name,
           input_tokens, output_tokens, cost, status
    FROM observations FINAL
    WHERE (project_id, trace_id) IN
        (
            SELECT project_id, trace_id
            FROM rollup_hour_traces FINAL
            WHERE project_id IN {projects:Array(String)}
              AND hour >= {lo:DateTime('UTC')} AND hour < {hi:DateTime('UTC')}
              AND (project_id, hour) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
        )
      AND project_id IN {projects:Array(String)}
      AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
      AND (project_id, toStartOfHour(start_time)) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
) AS o
LEFT JOIN
(
    SELECT project_id, id, environment
    FROM traces FINAL
    WHERE (project_id, id) IN
        (
            SELECT project_id, trace_id
            FROM observations FINAL
            WHERE (project_id, trace_id) IN
                (
                    SELECT project_id, trace_id
                    FROM rollup_hour_traces FINAL
                    WHERE project_id IN {projects:Array(String)}
                      AND hour >= {lo:DateTime('UTC')} AND hour < {hi:DateTime('UTC')}
                      AND (project_id, hour) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
                )
              AND project_id IN {projects:Array(String)}
              AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
              AND (project_id, toStartOfHour(start_time)) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
        )
) AS t ON t.project_id = o.project_id AND t.id = o.trace_id
GROUP BY GROUPING SETS
    ((o.project_id, h, o.model, o.provider, o.type, o.name, t.environment), (o.project_id, h, o.model), (o.project_id, h))

-- Fragment (a query): what each live observation contributes (kind 'observation'): one row keyed by the hour of its start, its group keys and its trace's environment, with its tokens, cost (in units of 1e-12), error and duration; reads the CTEs `live` (observations) and `meta` (their traces) the including statement defines, so its cost is theirs.
SELECT project_id, trace_id, 'observation' AS kind, toStartOfHour(start_time) AS hour,
       model, provider, type, name, environment, toInt64(1) AS n,
       input_tokens, output_tokens, cost_pico, errors, sum_ms, orphans, skewed, slots, counts
FROM
(
    SELECT o.project_id AS project_id, o.trace_id AS trace_id,
           o.start_time AS start_time, o.end_time AS end_time,
           o.model AS model, o.provider AS provider, o.type AS type, o.name AS name,
           m.environment AS environment,
           toInt128(o.input_tokens) AS input_tokens,
           toInt128(o.output_tokens) AS output_tokens,
           toInt128(round(o.cost * 1000000000000)) AS cost_pico,
           toInt64(o.status = 'error') AS errors,
           {{rollups/measured}}
    FROM live AS o
    LEFT JOIN meta AS m ON m.project_id = o.project_id AND m.trace_id = o.trace_id
)

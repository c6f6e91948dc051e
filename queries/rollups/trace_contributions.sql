-- Fragment (a query): what each trace with live observations contributes (kind 'trace'): one row keyed by the hour of its first start and its name, with its duration, last end - first start; reads the CTEs `live` and `meta` the including statement defines (every observation of the trace must be in `live`).
SELECT project_id, trace_id, 'trace' AS kind, toStartOfHour(start_time) AS hour,
       '' AS model, '' AS provider, '' AS type, name, '' AS environment, toInt64(1) AS n,
       toInt128(0) AS input_tokens, toInt128(0) AS output_tokens, toInt128(0) AS cost_pico,
       toInt64(0) AS errors, sum_ms, orphans, skewed, slots, counts
FROM
(
    SELECT s.project_id AS project_id, s.trace_id AS trace_id,
           s.start_time AS start_time, s.end_time AS end_time, m.name AS name,
           {{rollups/measured}}
    FROM
    (
        SELECT project_id, trace_id, min(start_time) AS start_time, maxOrNull(end_time) AS end_time
        FROM live
        GROUP BY project_id, trace_id
    ) AS s
    LEFT JOIN meta AS m ON m.project_id = s.project_id AND m.trace_id = s.trace_id
)

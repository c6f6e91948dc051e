-- Fragment (included as {{rollups/contributions}}): what live rows contribute to the rollups, one row per observation (kind 'observation') and one per trace (kind 'trace': last end - first start), keyed by the hour of the start; reads the CTEs `live` (observations) and `meta` (their traces) that the including statement defines, so its cost is theirs.
-- A duration is whole milliseconds; no end is an orphan, an end before the start is skewed,
-- both counted apart and kept out of sum_ms and the histogram. A measured duration of x ms
-- falls in log bucket ceil(log(x) / log(1.01 / 0.99)), 0 ms in bucket -32768
-- (service/rollups/sketch.py mirrors this). Cost is counted in units of 1e-12.
SELECT project_id, trace_id, kind, toStartOfHour(start_time) AS hour,
       model, provider, type, name, environment,
       toInt64(1) AS n, input_tokens, output_tokens, cost_pico, errors,
       end_time IS NULL AS is_orphan,
       NOT is_orphan AND end_time < start_time AS is_skewed,
       if(is_orphan OR is_skewed, 0,
          toUnixTimestamp64Milli(assumeNotNull(end_time)) - toUnixTimestamp64Milli(start_time)) AS sum_ms,
       toInt64(is_orphan) AS orphans,
       toInt64(is_skewed) AS skewed,
       if(is_orphan OR is_skewed, [],
          [if(sum_ms < 1, toInt16(-32768), toInt16(ceil(log(sum_ms) / log(1.01 / 0.99))))]) AS slots,
       if(is_orphan OR is_skewed, [], [toInt64(1)]) AS counts
FROM
(
    SELECT o.project_id AS project_id, o.trace_id AS trace_id, 'observation' AS kind,
           o.start_time AS start_time, o.end_time AS end_time,
           o.model AS model, o.provider AS provider, o.type AS type, o.name AS name,
           m.environment AS environment,
           toInt64(o.input_tokens) AS input_tokens, toInt64(o.output_tokens) AS output_tokens,
           toInt128(round(o.cost * 1000000000000)) AS cost_pico,
           toInt64(o.status = 'error') AS errors
    FROM live AS o
    LEFT JOIN meta AS m ON m.project_id = o.project_id AND m.trace_id = o.trace_id
    UNION ALL
    SELECT s.project_id, s.trace_id, 'trace', s.first_start, s.last_end, '', '', '', m.name, '',
           0, 0, toInt128(0), 0
    FROM
    (
        SELECT project_id, trace_id, min(start_time) AS first_start, maxOrNull(end_time) AS last_end
        FROM live
        GROUP BY project_id, trace_id
    ) AS s
    LEFT JOIN meta AS m ON m.project_id = s.project_id AND m.trace_id = s.trace_id
)

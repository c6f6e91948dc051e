-- Per-bucket stats of one definition over [from, to): a primary-key range on (project, definition, hour).
SELECT
    if({granularity:String} = 'day', toStartOfDay(trace_time), toStartOfHour(trace_time)) AS bucket,
    countIf(duration_ms IS NOT NULL) AS measured,
    sum(skewed) AS skewed_traces,
    sum(missing) AS missing_traces,
    avgOrNull(duration_ms) AS avg_ms,
    quantilesTDigestIf(0.5, 0.9, 0.95, 0.99)(assumeNotNull(duration_ms), duration_ms IS NOT NULL)
        AS percentiles,
    maxOrNull(duration_ms) AS max_ms
FROM trace_durations_by_hour FINAL
WHERE project_id = {project_id:String}
  AND definition = {definition:String}
  AND hour >= toStartOfHour({from:DateTime64(6, 'UTC')})
  AND hour < {to:DateTime64(6, 'UTC')}
  AND trace_time >= {from:DateTime64(6, 'UTC')}
  AND trace_time < {to:DateTime64(6, 'UTC')}
  AND definition_version = {version:UInt32}
GROUP BY bucket
ORDER BY bucket

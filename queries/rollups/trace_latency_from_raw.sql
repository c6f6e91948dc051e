-- Trace latency (last end − first start) computed from live raw rows (fallback/verification): FINAL scan of the project's observations in the range plus the traces they belong to.
-- Percentiles: the histogram bucket holding rank q*(count-1) of the merged log-bucket
-- histogram; service/rollups/sketch.py turns a bucket into its value (2*g^k/(g+1)).
SELECT
    bucket, g_name, g_model, g_provider, g_type,
    s_count, s_sum_ms, s_max_ms, s_orphans, s_skewed,
    arrayCumSum(mapValues(s_histogram)) AS s_cumulative,
    [mapKeys(s_histogram)[arrayFirstIndex(c -> c > 0.5 * (s_count - 1), s_cumulative)],
     mapKeys(s_histogram)[arrayFirstIndex(c -> c > 0.9 * (s_count - 1), s_cumulative)],
     mapKeys(s_histogram)[arrayFirstIndex(c -> c > 0.95 * (s_count - 1), s_cumulative)],
     mapKeys(s_histogram)[arrayFirstIndex(c -> c > 0.99 * (s_count - 1), s_cumulative)]]
        AS s_quantile_buckets
FROM
(
    SELECT
        if({day:Bool}, toStartOfDay(s.first_start, 'UTC'), toStartOfHour(s.first_start, 'UTC')) AS bucket,
        if({by_name:Bool}, n.name, '') AS g_name,
        '' AS g_model,
        '' AS g_provider,
        '' AS g_type,
        countIf(s.measured) AS s_count,
        sumIf(s.ms, s.measured) AS s_sum_ms,
        maxIf(s.ms, s.measured) AS s_max_ms,
        countIf(s.last_end IS NULL) AS s_orphans,
        countIf(s.last_end IS NOT NULL AND NOT s.measured) AS s_skewed,
        sumMapIf(map(if(s.ms < 1, toInt16(-32768), toInt16(ceil(log(s.ms) / log(1.01 / 0.99)))), toUInt64(1)), s.measured) AS s_histogram
    FROM
    (
        SELECT trace_id, first_start, last_end,
               last_end IS NOT NULL AND last_end >= first_start AS measured,
               if(last_end IS NULL, 0.,
                  toFloat64(toUnixTimestamp64Milli(assumeNotNull(last_end)) - toUnixTimestamp64Milli(first_start))) AS ms
        FROM
        (
            SELECT trace_id, min(start_time) AS first_start, maxOrNull(end_time) AS last_end
            FROM observations FINAL
            WHERE project_id = {project_id:String}
              AND trace_id IN
                  (
                      SELECT trace_id FROM observations FINAL
                      WHERE project_id = {project_id:String}
                        AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
                  )
            GROUP BY trace_id
        )
        WHERE first_start >= {lo:DateTime('UTC')} AND first_start < {hi:DateTime('UTC')}
    ) AS s
    LEFT JOIN
    (
        SELECT id, name FROM traces FINAL WHERE project_id = {project_id:String}
    ) AS n ON n.id = s.trace_id
    GROUP BY bucket, g_name, g_model, g_provider, g_type
)
ORDER BY bucket, g_name, g_model, g_provider, g_type

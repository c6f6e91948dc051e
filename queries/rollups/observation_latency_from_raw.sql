-- Observation latency computed from live raw rows (fallback/verification): FINAL scan of the project's observations in the range, O(rows in range).
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
        if({day:Bool}, toStartOfDay(start_time, 'UTC'), toStartOfHour(start_time, 'UTC')) AS bucket,
        if({by_name:Bool}, name, '') AS g_name,
        if({by_model:Bool}, model, '') AS g_model,
        if({by_provider:Bool}, provider, '') AS g_provider,
        if({by_type:Bool}, type, '') AS g_type,
        countIf(measured) AS s_count,
        sumIf(ms, measured) AS s_sum_ms,
        maxIf(ms, measured) AS s_max_ms,
        countIf(end_time IS NULL) AS s_orphans,
        countIf(end_time IS NOT NULL AND NOT measured) AS s_skewed,
        sumMapIf(map(if(ms < 1, toInt16(-32768), toInt16(ceil(log(ms) / log(1.01 / 0.99)))), toUInt64(1)), measured) AS s_histogram
    FROM
    (
        SELECT start_time, end_time, name, model, provider, type,
               end_time IS NOT NULL AND end_time >= start_time AS measured,
               if(end_time IS NULL, 0.,
                  toFloat64(toUnixTimestamp64Milli(assumeNotNull(end_time)) - toUnixTimestamp64Milli(start_time))) AS ms
        FROM observations FINAL
        WHERE project_id = {project_id:String}
          AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
    )
    GROUP BY bucket, g_name, g_model, g_provider, g_type
)
ORDER BY bucket, g_name, g_model, g_provider, g_type

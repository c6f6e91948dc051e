-- Latency per bucket and group for one project, range and level: ONE (project_id, level, grouping, daily, bucket) sort-key range scan of latency_rollup, in the coarsest stored grouping holding the requested keys (whole days [dlo, dhi) from daily rows, other hours from hourly ones), keeping per bucket only rows of its highest published version; histograms merge by sumForEach.
-- Percentiles: the histogram bucket holding rank q*(count-1) of the merged dense histogram
-- (element 1 = the 0 ms bucket -32768, element i + 2 = bucket i); service/rollups/sketch.py
-- turns a bucket into its value (2*g^k/(g+1)).
SELECT
    bucket, g_name, g_model, g_provider, g_type,
    s_count, s_sum_ms, s_max_ms, s_orphans, s_skewed,
    arrayMap(
        q -> if(arrayFirstIndex(c -> c > q * (s_count - 1), arrayCumSum(s_histogram)) AS slot = 1,
                -32768, toInt32(slot) - 2),
        [0.5, 0.9, 0.95, 0.99]) AS s_quantile_buckets
FROM
(
    SELECT
        if({day:Bool}, toStartOfDay(src, 'UTC'), src) AS bucket,
        if({by_name:Bool}, name, '') AS g_name,
        if({by_model:Bool}, model, '') AS g_model,
        if({by_provider:Bool}, provider, '') AS g_provider,
        if({by_type:Bool}, type, '') AS g_type,
        sum(count) AS s_count,
        sum(sum_ms) AS s_sum_ms,
        max(max_ms) AS s_max_ms,
        sum(orphans) AS s_orphans,
        sum(skewed) AS s_skewed,
        sumForEach(histogram) AS s_histogram
    FROM
    (
        SELECT bucket AS src, version, published,
               name, model, provider, type, count, sum_ms, max_ms, orphans, skewed, histogram,
               -- The bucket's published version: its highest marker (0 before one).
               max(if(published, version, 0)) OVER (PARTITION BY daily, bucket) AS current
        FROM latency_rollup
        WHERE project_id = {project_id:String}
          AND level = {level:String}
          AND grouping = {grouping:UInt8}
          AND ((daily AND bucket >= {dlo:DateTime('UTC')} AND bucket < {dhi:DateTime('UTC')})
               OR (NOT daily
                   AND ((bucket >= {lo:DateTime('UTC')} AND bucket < {dlo:DateTime('UTC')})
                        OR (bucket >= {dhi:DateTime('UTC')} AND bucket < {hi:DateTime('UTC')}))))
    )
    WHERE version = current AND NOT published
    GROUP BY bucket, g_name, g_model, g_provider, g_type
)
ORDER BY bucket, g_name, g_model, g_provider, g_type

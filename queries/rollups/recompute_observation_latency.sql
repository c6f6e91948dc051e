-- Recompute hourly observation latency rows (count, sum, max, dense log-bucket histogram, orphans, skewed) of the given buckets from live raw rows, per grouping (all keys, name, totals) in one insert, unpublished under a fresh version; rows read by primary key for the traces rollup_hour_traces lists in these buckets (cost ∝ the buckets' traces, not history).
-- The histogram is built sparse (sumMap over bucket indexes), then laid out dense: element 1
-- is the 0 ms bucket, element i + 2 is bucket i (service/rollups/sketch.py mirrors this).
INSERT INTO latency_rollup
    (project_id, level, grouping, daily, bucket, version, name, model, provider, type,
     count, sum_ms, max_ms, orphans, skewed, histogram)
SELECT
    project_id, 'observation', g, false, h, {version:UInt64}, name, model, provider, type,
    n_measured, s_ms, m_ms, n_orphans, n_skewed,
    arrayFlatten(arrayMap(
        (slot, n, previous) -> arrayConcat(arrayWithConstant(slot - previous - 1, toUInt64(0)), [n]),
        slots, mapValues(sparse), arrayPopBack(arrayPushFront(slots, -1))))
FROM
(
    SELECT
        project_id,
        toStartOfHour(start_time) AS h,
        name,
        model,
        provider,
        type,
        -- 0: every key, 1: name only, 2: totals (the rolled-up keys read as '').
        toUInt8(grouping(name) + grouping(model)) AS g,
        countIf(measured) AS n_measured,
        sumIf(ms, measured) AS s_ms,
        maxIf(ms, measured) AS m_ms,
        countIf(end_time IS NULL) AS n_orphans,
        countIf(end_time IS NOT NULL AND NOT measured) AS n_skewed,
        sumMapIf(map(if(ms < 1, toInt16(-32768), toInt16(ceil(log(ms) / log(1.01 / 0.99)))), toUInt64(1)), measured) AS sparse,
        arrayMap(k -> if(k = -32768, 0, toInt32(k) + 1), mapKeys(sparse)) AS slots
    FROM
    (
        SELECT project_id, start_time, end_time, name, model, provider, type,
               end_time IS NOT NULL AND end_time >= start_time AS measured,
               if(end_time IS NULL, 0.,
                  toFloat64(toUnixTimestamp64Milli(assumeNotNull(end_time)) - toUnixTimestamp64Milli(start_time))) AS ms
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
    GROUP BY GROUPING SETS ((project_id, h, name, model, provider, type), (project_id, h, name), (project_id, h))
)

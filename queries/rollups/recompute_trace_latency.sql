-- Recompute hourly trace latency rows (last end − first start over live observations) for traces whose first start falls in the given buckets, unpublished under a fresh version; candidate traces come from rollup_hour_traces (a trace's first-start hour is one of its indexed hours), then primary-key lookups.
-- Dense histogram layout as in recompute_observation_latency.sql.
INSERT INTO latency_rollup
    (project_id, level, grouping, daily, bucket, version, name, model, provider, type,
     count, sum_ms, max_ms, orphans, skewed, histogram)
SELECT
    project_id, 'trace', 0, false, h, {version:UInt64}, trace_name, '', '', '',
    n_measured, s_ms, m_ms, n_orphans, n_skewed,
    arrayFlatten(arrayMap(
        (slot, n, previous) -> arrayConcat(arrayWithConstant(slot - previous - 1, toUInt64(0)), [n]),
        slots, mapValues(sparse), arrayPopBack(arrayPushFront(slots, -1))))
FROM
(
    SELECT
        s.project_id AS project_id,
        toStartOfHour(s.first_start) AS h,
        n.name AS trace_name,
        countIf(s.measured) AS n_measured,
        sumIf(s.ms, s.measured) AS s_ms,
        maxIf(s.ms, s.measured) AS m_ms,
        countIf(s.last_end IS NULL) AS n_orphans,
        countIf(s.last_end IS NOT NULL AND NOT s.measured) AS n_skewed,
        sumMapIf(map(if(s.ms < 1, toInt16(-32768), toInt16(ceil(log(s.ms) / log(1.01 / 0.99)))), toUInt64(1)), s.measured) AS sparse,
        arrayMap(k -> if(k = -32768, 0, toInt32(k) + 1), mapKeys(sparse)) AS slots
    FROM
    (
        SELECT project_id, trace_id, first_start, last_end,
               last_end IS NOT NULL AND last_end >= first_start AS measured,
               if(last_end IS NULL, 0.,
                  toFloat64(toUnixTimestamp64Milli(assumeNotNull(last_end)) - toUnixTimestamp64Milli(first_start))) AS ms
        FROM
        (
            SELECT project_id, trace_id, min(start_time) AS first_start, maxOrNull(end_time) AS last_end
            FROM observations FINAL
            WHERE (project_id, trace_id) IN
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
            GROUP BY project_id, trace_id
        )
        WHERE (project_id, toStartOfHour(first_start)) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
    ) AS s
    LEFT JOIN
    (
        SELECT project_id, id, name
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
    ) AS n ON n.project_id = s.project_id AND n.id = s.trace_id
    GROUP BY s.project_id, h, n.name
)

-- Explicit-bucket recompute: widen the memory of every trace the index lists in these buckets to old ∪ current hours; index range read, then primary-key lookups by trace.
INSERT INTO rollup_trace_hours (project_id, trace_id, hours, current_hours, version)
SELECT
    c.project_id,
    c.trace_id,
    arraySort(arrayDistinct(arrayConcat(m.hours, c.now_hours))),
    arraySort(c.now_hours),
    {version:UInt64}
FROM
(
    SELECT k.project_id AS project_id, k.trace_id AS trace_id, o.now_hours AS now_hours
    FROM
    (
        SELECT DISTINCT project_id, trace_id
        FROM rollup_hour_traces FINAL
        WHERE project_id IN {projects:Array(String)}
          AND hour >= {lo:DateTime('UTC')} AND hour < {hi:DateTime('UTC')}
          AND (project_id, hour) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
    ) AS k
    LEFT JOIN
    (
        SELECT project_id, trace_id, groupUniqArray(toStartOfHour(start_time)) AS now_hours
        FROM observations FINAL
        WHERE (project_id, trace_id) IN
            (
                SELECT project_id, trace_id
                FROM rollup_hour_traces FINAL
                WHERE project_id IN {projects:Array(String)}
                  AND hour >= {lo:DateTime('UTC')} AND hour < {hi:DateTime('UTC')}
                  AND (project_id, hour) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
            )
        GROUP BY project_id, trace_id
    ) AS o ON o.project_id = k.project_id AND o.trace_id = k.trace_id
) AS c
LEFT JOIN
(
    SELECT project_id, trace_id, hours
    FROM rollup_trace_hours FINAL
    WHERE (project_id, trace_id) IN
        (
            SELECT project_id, trace_id
            FROM rollup_hour_traces FINAL
            WHERE project_id IN {projects:Array(String)}
              AND hour >= {lo:DateTime('UTC')} AND hour < {hi:DateTime('UTC')}
              AND (project_id, hour) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
        )
) AS m ON m.project_id = c.project_id AND m.trace_id = c.trace_id

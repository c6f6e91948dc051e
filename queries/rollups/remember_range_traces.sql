-- Backfill index build: widen the memory of every trace with live rows starting in [lo, hi) to old ∪ current hours; one scan of the range's start_time (skip index) plus the traces' rows, once per backfill job, not per chunk.
INSERT INTO rollup_trace_hours (project_id, trace_id, hours, current_hours, version)
SELECT
    c.project_id,
    c.trace_id,
    arraySort(arrayDistinct(arrayConcat(m.hours, c.now_hours))),
    arraySort(c.now_hours),
    {version:UInt64}
FROM
(
    SELECT project_id, trace_id, groupUniqArray(toStartOfHour(start_time)) AS now_hours
    FROM observations FINAL
    WHERE (project_id, trace_id) IN
        (
            SELECT DISTINCT project_id, trace_id
            FROM observations
            WHERE start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
        )
    GROUP BY project_id, trace_id
) AS c
LEFT JOIN
(
    SELECT project_id, trace_id, hours
    FROM rollup_trace_hours FINAL
    WHERE (project_id, trace_id) IN
        (
            SELECT DISTINCT project_id, trace_id
            FROM observations
            WHERE start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
        )
) AS m ON m.project_id = c.project_id AND m.trace_id = c.trace_id

-- Widen each dirty trace's memory to old hours ∪ current hours (primary-key lookups by trace); a failed pass leaves a superset.
INSERT INTO rollup_trace_hours (project_id, trace_id, hours, current_hours, version)
SELECT
    d.project_id,
    d.trace_id,
    arraySort(arrayDistinct(arrayConcat(m.hours, c.now_hours))),
    arraySort(c.now_hours),
    {version:UInt64}
FROM
(
    SELECT project_id, trace_id FROM rollup_dirty_traces WHERE pass = {pass:UInt64}
) AS d
LEFT JOIN
(
    SELECT project_id, trace_id, hours
    FROM rollup_trace_hours FINAL
    WHERE (project_id, trace_id) IN
        (SELECT project_id, trace_id FROM rollup_dirty_traces WHERE pass = {pass:UInt64})
) AS m ON m.project_id = d.project_id AND m.trace_id = d.trace_id
LEFT JOIN
(
    SELECT project_id, trace_id, groupUniqArray(toStartOfHour(start_time)) AS now_hours
    FROM observations FINAL
    WHERE (project_id, trace_id) IN
        (SELECT project_id, trace_id FROM rollup_dirty_traces WHERE pass = {pass:UInt64})
    GROUP BY project_id, trace_id
) AS c ON c.project_id = d.project_id AND c.trace_id = d.trace_id

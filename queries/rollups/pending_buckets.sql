-- How many (project, hour) buckets wait for the next pass: hours remembered for, or now held by, traces changed since the cursor (primary-key lookups).
WITH dirty AS
(
    SELECT DISTINCT project_id, trace_id
    FROM trace_activity
    WHERE ingested_at > {cursor:DateTime64(6, 'UTC')}
)
SELECT uniqExact(project_id, hour)
FROM
(
    SELECT project_id, arrayJoin(hours) AS hour
    FROM rollup_trace_hours FINAL
    WHERE (project_id, trace_id) IN (SELECT project_id, trace_id FROM dirty)
    UNION ALL
    SELECT project_id, toStartOfHour(start_time, 'UTC') AS hour
    FROM observations FINAL
    WHERE (project_id, trace_id) IN (SELECT project_id, trace_id FROM dirty)
)

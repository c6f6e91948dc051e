-- How many (project, hour) buckets wait for the next pass: the hours traces changed since the cursor hold in the ledger or in their live rows; primary-key lookups by trace after a range read of trace_activity.
WITH dirty AS
(
    SELECT DISTINCT project_id, trace_id
    FROM trace_activity
    WHERE ingested_at > {cursor:DateTime64(6, 'UTC')}
)
SELECT uniqExact(project_id, hour)
FROM
(
    SELECT project_id, hour
    FROM rollup_ledger
    WHERE view = 'trace' AND (project_id, trace_id) IN (SELECT project_id, trace_id FROM dirty)
    GROUP BY project_id, trace_id, kind, hour, model, provider, type, name, environment
    HAVING sum(n) != 0
    UNION ALL
    SELECT project_id, toStartOfHour(start_time, 'UTC') AS hour
    FROM observations FINAL
    WHERE (project_id, trace_id) IN (SELECT project_id, trace_id FROM dirty)
)

-- The (project, hour) buckets this pass must recompute: the widened memory it just wrote (its own version only).
SELECT DISTINCT project_id, arrayJoin(hours) AS hour
FROM rollup_trace_hours
WHERE version = {version:UInt64}
  AND (project_id, trace_id) IN
      (SELECT project_id, trace_id FROM rollup_dirty_traces WHERE pass = {pass:UInt64})
ORDER BY hour, project_id

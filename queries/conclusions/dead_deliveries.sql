-- Dead deliveries of one project (optionally one trace) to re-queue; reads only the outbox, as a primary-key range on project_id.
SELECT
    project_id, trace_id, revision, concluded_at, last_activity_at, summary,
    status, attempts, next_attempt_at, last_error
FROM conclusion_outbox FINAL
WHERE project_id = {project_id:String}
  AND status = 'dead'
  AND ({trace_id:String} = '' OR trace_id = {trace_id:String})
ORDER BY trace_id, revision
LIMIT {limit:UInt32}

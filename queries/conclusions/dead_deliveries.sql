-- Dead deliveries of one project (optionally one trace) to re-queue; reads only delivery_outbox (bounded by its slots), as a primary-key range on project_id.
WITH latest AS
(
    SELECT
        project_id, trace_id, revision,
        max(updated_at) AS version,
        argMax(status, updated_at) AS current_status
    FROM delivery_outbox
    WHERE project_id = {project_id:String}
      AND ({trace_id:String} = '' OR trace_id = {trace_id:String})
    GROUP BY project_id, trace_id, revision
    HAVING current_status = 'dead'
    ORDER BY trace_id, revision
    LIMIT {limit:UInt32}
)
SELECT
    project_id, trace_id, revision, concluded_at, last_activity_at, summary,
    status, attempts, first_attempt_at, next_attempt_at, last_error
FROM delivery_outbox
WHERE project_id = {project_id:String}
  AND (project_id, trace_id, revision, updated_at)
      IN (SELECT project_id, trace_id, revision, version FROM latest)
ORDER BY trace_id, revision
LIMIT 1 BY project_id, trace_id, revision

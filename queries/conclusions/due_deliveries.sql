-- Pending deliveries of one shard whose next attempt is due, oldest due first. Reads only delivery_outbox (its two newest slots plus the open deliveries, never delivery history): state columns for every row, payloads only for the rows returned.
WITH latest AS
(
    SELECT
        project_id, trace_id, revision,
        max(updated_at) AS version,
        argMax(status, updated_at) AS current_status,
        argMax(next_attempt_at, updated_at) AS due_at
    FROM delivery_outbox
    WHERE cityHash64(trace_id) % {shard_count:UInt32} = {shard_index:UInt32}
    GROUP BY project_id, trace_id, revision
    HAVING current_status = 'pending' AND due_at <= {now:DateTime64(6, 'UTC')}
    ORDER BY due_at, project_id, trace_id, revision
    LIMIT {limit:UInt32}
)
SELECT
    project_id, trace_id, revision, concluded_at, last_activity_at, summary,
    status, attempts, first_attempt_at, next_attempt_at, last_error
FROM delivery_outbox
WHERE (project_id, trace_id, revision, updated_at)
      IN (SELECT project_id, trace_id, revision, version FROM latest)
ORDER BY next_attempt_at, project_id, trace_id, revision
LIMIT 1 BY project_id, trace_id, revision

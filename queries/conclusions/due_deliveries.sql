-- Pending deliveries of one shard whose next attempt is due, oldest first; reads only the outbox (open deliveries plus not-yet-cleaned tombstones), never the conclusion history.
SELECT
    project_id, trace_id, revision, concluded_at, last_activity_at, summary,
    status, attempts, next_attempt_at, last_error
FROM conclusion_outbox FINAL
WHERE status = 'pending'
  AND next_attempt_at <= {now:DateTime64(6, 'UTC')}
  AND cityHash64(trace_id) % {shard_count:UInt32} = {shard_index:UInt32}
ORDER BY next_attempt_at, project_id, trace_id, revision
LIMIT {limit:UInt32}

-- One page of a project's conclusion feed after a keyset cursor; a primary-key range on project_id, with partitions and the concluded_at minmax index pruned by since/cursor, capped by LIMIT.
SELECT
    project_id, trace_id, revision, concluded_at, last_activity_at, summary,
    status, attempts, next_attempt_at, last_error, delivered_at
FROM conclusions FINAL
WHERE project_id = {project_id:String}
  AND concluded_at >= {since:DateTime64(6, 'UTC')}
  AND concluded_at >= {after_at:DateTime64(6, 'UTC')}
  AND (concluded_at, trace_id, revision)
      > ({after_at:DateTime64(6, 'UTC')}, {after_trace:String}, {after_revision:UInt32})
  AND ({status:String} = '' OR status = {status:String})
ORDER BY concluded_at, trace_id, revision
LIMIT {limit:UInt32}

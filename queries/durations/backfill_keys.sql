-- The next page of concluded traces after the cursor, in primary-key order; LIMIT bounds the chunk.
SELECT project_id, trace_id, revision
FROM duration_traces FINAL
WHERE ({project_id:String} = '' OR project_id = {project_id:String})
  AND (project_id > {after_project:String}
       OR (project_id = {after_project:String} AND trace_id > {after_trace:String}))
  AND registered_at <= {snapshot:DateTime64(6, 'UTC')}
ORDER BY project_id, trace_id
LIMIT {limit:UInt32}

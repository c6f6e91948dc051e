-- Jobs, newest first, optionally filtered by project and status; LIMIT bounds the page.
SELECT *
FROM jobs FINAL
WHERE ({project_id:String} = '*' OR project_id = {project_id:String})
  AND (empty({statuses:Array(String)}) OR has({statuses:Array(String)}, status))
ORDER BY created_at DESC, id
LIMIT {limit:UInt32}

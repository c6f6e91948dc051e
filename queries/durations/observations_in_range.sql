-- The anchor-relevant fields of live observations of one project's traces in [first, last]: one primary-key range (backfill pages).
SELECT project_id, trace_id, id, type, name, start_time, end_time, completion_start_time
FROM observations FINAL
WHERE project_id = {project_id:String}
  AND trace_id >= {first:String} AND trace_id <= {last:String}

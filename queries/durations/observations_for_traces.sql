-- The anchor-relevant fields of the live observations of the given traces; primary-key lookups.
SELECT project_id, trace_id, id, type, name, start_time, end_time, completion_start_time
FROM observations FINAL
WHERE (project_id, trace_id) IN {keys:Array(Tuple(String, String))}

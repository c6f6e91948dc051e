-- The stored named durations of one trace: a primary-key range, never a computation.
SELECT definition, definition_version, revision, duration_ms, start_time, end_time, reason,
       computed_at
FROM trace_durations FINAL
WHERE project_id = {project_id:String} AND trace_id = {trace_id:String}
ORDER BY definition

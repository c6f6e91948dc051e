-- The stored duration rows of one project's traces in [first, last], for hour moves: one primary-key range.
SELECT project_id, trace_id, definition, trace_time
FROM trace_durations FINAL
WHERE project_id = {project_id:String}
  AND trace_id >= {first:String} AND trace_id <= {last:String}

-- The stored duration rows (any definition) of the given traces, for hour moves; primary-key lookups.
SELECT project_id, trace_id, definition, trace_time
FROM trace_durations FINAL
WHERE (project_id, trace_id) IN {keys:Array(Tuple(String, String))}

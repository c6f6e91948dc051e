-- The live observations of the given (project_id, trace_id) keys (a bounded list): primary-key lookups.
SELECT project_id, trace_id, id, type, name, start_time, end_time, completion_start_time,
       model, status, input_tokens, output_tokens, cost
FROM observations FINAL
WHERE (project_id, trace_id) IN {keys:Array(Tuple(String, String))}
ORDER BY project_id, trace_id, start_time, id

-- The live trace records of the given (project_id, id) keys (a bounded list): primary-key lookups.
SELECT project_id, id, name, timestamp, user_id, session_id, environment, tags
FROM traces FINAL
WHERE (project_id, id) IN {keys:Array(Tuple(String, String))}

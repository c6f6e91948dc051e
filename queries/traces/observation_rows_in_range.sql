-- The live observations of one project's traces with ids in [first, last]: one primary-key range (backfill pages).
SELECT project_id, trace_id, id, type, name, start_time, end_time, completion_start_time,
       model, status, input_tokens, output_tokens, cost
FROM observations FINAL
WHERE project_id = {project_id:String}
  AND trace_id >= {first:String} AND trace_id <= {last:String}
ORDER BY project_id, trace_id, start_time, id

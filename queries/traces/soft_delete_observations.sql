-- Soft-delete every observation of one trace: newer versions with is_deleted = 1 (primary-key range).
INSERT INTO observations
SELECT project_id, trace_id, id, parent_id, type, name, start_time, end_time,
       completion_start_time, model, provider, input_tokens, output_tokens, cost, status,
       metadata, {stamp:DateTime64(6, 'UTC')} AS ingested_at, 1 AS is_deleted
FROM observations FINAL
WHERE project_id = {project_id:String} AND trace_id = {trace_id:String}

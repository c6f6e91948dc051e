-- Soft-delete one trace row: a newer version with is_deleted = 1 (primary-key lookup).
INSERT INTO traces
SELECT project_id, id, name, timestamp, user_id, session_id, environment, tags, metadata,
       {stamp:DateTime64(6, 'UTC')} AS ingested_at, 1 AS is_deleted
FROM traces FINAL
WHERE project_id = {project_id:String} AND id = {trace_id:String}

-- Traces touched (insert, upsert, delete) since the cursor; a range read of trace_activity, ordered by ingested_at.
INSERT INTO rollup_dirty_traces (pass, project_id, trace_id)
SELECT DISTINCT {pass:UInt64}, project_id, trace_id
FROM trace_activity
WHERE ingested_at > {cursor:DateTime64(6, 'UTC')}

-- Stage every trace touched (insert, upsert, soft delete) after the cursor as one batch: a range read of trace_activity by ingested_at, O(activity since the cursor); the epoch cursor takes all the activity table keeps (30 days).
INSERT INTO rollup_batches (batch, project_id, trace_id)
SETTINGS insert_quorum = 'auto', insert_quorum_parallel = 0, max_threads = 1,
         os_thread_priority = 10
SELECT DISTINCT {batch:UInt64}, project_id, trace_id
FROM trace_activity
WHERE ingested_at > {cursor:DateTime64(6, 'UTC')}

-- The next chunk of a staged batch: how many keys follow the cursor (at most `size`) and the last of them; a primary-key range read of rollup_batches.
SELECT count() AS traces, max((project_id, trace_id)) AS last
FROM
(
    SELECT project_id, trace_id
    FROM rollup_batches
    WHERE batch = {batch:UInt64}
      AND (project_id, trace_id) > ({after_project:String}, {after_trace:String})
    ORDER BY project_id, trace_id
    LIMIT {size:UInt64}
)
SETTINGS select_sequential_consistency = 1

-- Open deliveries by status (pending, dead) across all shards; reads only delivery_outbox's state columns (bounded by its slots).
SELECT current_status AS status, count() AS deliveries
FROM
(
    SELECT argMax(status, updated_at) AS current_status
    FROM delivery_outbox
    GROUP BY project_id, trace_id, revision
)
WHERE current_status IN ('pending', 'dead')
GROUP BY current_status

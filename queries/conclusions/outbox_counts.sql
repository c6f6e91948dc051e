-- Open deliveries by status (pending, dead) across all shards; reads only the outbox.
SELECT status, count() AS deliveries
FROM conclusion_outbox FINAL
GROUP BY status

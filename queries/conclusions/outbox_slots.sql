-- The slots (partitions) delivery_outbox holds, oldest first; reads table metadata only (system.parts), never rows.
SELECT DISTINCT toUInt32(partition_id) AS slot_seconds
FROM system.parts
WHERE database = currentDatabase() AND table = 'delivery_outbox' AND active
ORDER BY slot_seconds

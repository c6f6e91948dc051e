-- The detector's cursor for one shard layout; a primary-key lookup in a table of one row per shard.
SELECT cursor
FROM conclusion_cursors FINAL
WHERE shard_count = {shard_count:UInt16} AND shard_index = {shard_index:UInt16}

-- What every rollup answer depends on, as one number: a hash over the active parts of rollup_state (the watermark) and rollup_ledger (the rows), so an insert, merge or mutation of either changes it; reads system.parts for two tables, never their data.
SELECT groupBitXor(sipHash64(table, name, rows, bytes_on_disk)) AS version
FROM system.parts
WHERE database = currentDatabase() AND table IN ('rollup_state', 'rollup_ledger') AND active

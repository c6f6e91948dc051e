-- How many traces a staged batch holds; a primary-key range count of rollup_batches.
SELECT count() FROM rollup_batches WHERE batch = {batch:UInt64}
SETTINGS select_sequential_consistency = 1

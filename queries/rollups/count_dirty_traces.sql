-- How many traces one pass found dirty; a primary-key range of the scratch table.
SELECT count() FROM rollup_dirty_traces WHERE pass = {pass:UInt64}

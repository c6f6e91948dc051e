-- Fragment (select-list expressions over `start_time` and `end_time`): the one definition of a duration. Whole milliseconds; no end is an orphan, an end before the start is skewed, both counted apart and kept out of sum_ms and the histogram; a measured x ms falls in log bucket ceil(log(x) / log(1.01 / 0.99)), 0 ms in bucket -32768 (service/rollups/sketch.py mirrors this).
end_time IS NULL AS is_orphan,
NOT is_orphan AND end_time < start_time AS is_skewed,
-- sum_ms is Int128 before anything adds it up: one duration is at most the ingest window
-- (~4.1e12 ms), and Int64 sums of those wrap after ~2.2 million (migration 0011).
if(is_orphan OR is_skewed, 0,
   toUnixTimestamp64Milli(assumeNotNull(end_time)) - toUnixTimestamp64Milli(start_time)) AS measured_ms,
toInt128(measured_ms) AS sum_ms,
toInt64(is_orphan) AS orphans,
toInt64(is_skewed) AS skewed,
if(is_orphan OR is_skewed, [],
   [if(measured_ms < 1, toInt16(-32768), toInt16(ceil(log(measured_ms) / log(1.01 / 0.99))))]) AS slots,
if(is_orphan OR is_skewed, [], [toInt64(1)]) AS counts

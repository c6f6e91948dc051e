-- Ledger sums that no volume of rows within the ingest limits can wrap. Ingest bounds each
-- observation (tokens <= 1e9; times inside [1970-01-01, 2100-01-01), so one duration is at
-- most ~4.1e12 ms), not how many arrive. A bucket row adds up every observation of its
-- project and hour or day: in Int64, durations wrap after ~2.2 million observations lasting
-- the whole window, tokens after ~9.2e9 maximal observations. In Int128 either needs more than
-- 1e25. cost_pico is Int128 already (1e21 per observation at most); the counts (n, errors,
-- orphans, skewed, histogram counts) grow by at most 1 per observation and stay Int64. The
-- statements producing these values compute in Int128 too (queries/rollups/measured.sql,
-- observation_contributions.sql, trace_contributions.sql), so no intermediate sum wraps.
ALTER TABLE rollup_ledger
    MODIFY COLUMN input_tokens Int128,
    MODIFY COLUMN output_tokens Int128,
    MODIFY COLUMN sum_ms Int128;

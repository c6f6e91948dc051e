-- The first and last observation start stored at the job's snapshot (reads the start_time column once per job).
SELECT minOrNull(start_time), maxOrNull(start_time)
FROM observations
WHERE ingested_at <= {snapshot:DateTime64(6, 'UTC')}

-- Raw observation rows (every stored version) a rollup backfill covers: [lo, hi) at the snapshot; the start_time skip index bounds it.
SELECT count()
FROM observations
WHERE start_time >= {lo:DateTime64(3, 'UTC')} AND start_time < {hi:DateTime64(3, 'UTC')}
  AND ingested_at <= {snapshot:DateTime64(6, 'UTC')}

-- The (project, hour) buckets holding rows in one time slice at the snapshot, with raw row counts; the start_time skip index bounds it to the slice.
SELECT project_id, toStartOfHour(start_time) AS bucket_hour, count() AS stored_rows
FROM observations
WHERE start_time >= {lo:DateTime64(3, 'UTC')} AND start_time < {hi:DateTime64(3, 'UTC')}
  AND ingested_at <= {snapshot:DateTime64(6, 'UTC')}
GROUP BY project_id, bucket_hour
ORDER BY bucket_hour, project_id

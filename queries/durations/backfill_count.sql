-- How many concluded traces a durations backfill will visit (one project's key range, or all).
SELECT count()
FROM duration_traces FINAL
WHERE ({project_id:String} = '' OR project_id = {project_id:String})
  AND registered_at <= {snapshot:DateTime64(6, 'UTC')}

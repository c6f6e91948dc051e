-- How many jobs are in each status (the jobs table holds one small row per job).
SELECT status, count() AS jobs
FROM jobs FINAL
GROUP BY status

-- Jobs the scheduler should run or resume, oldest first; LIMIT bounds one tick.
SELECT *
FROM jobs FINAL
WHERE status IN ('queued', 'running', 'paused')
ORDER BY created_at, id
LIMIT {limit:UInt32}

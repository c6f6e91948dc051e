-- Stage every trace a rollups backfill covers as one batch: traces with any stored observation version starting in [lo, hi) and traces whose ledger rows lie there (so rows that should go are retracted), or all of them with `everything`; one scan of observations' start_time and of the ledger's trace rows, once per job.
INSERT INTO rollup_batches (batch, project_id, trace_id)
SETTINGS insert_quorum = 'auto', insert_quorum_parallel = 0, max_threads = 1,
         os_thread_priority = 10
SELECT DISTINCT {batch:UInt64}, project_id, trace_id
FROM
(
    SELECT project_id, trace_id
    FROM observations
    WHERE {everything:Bool}
       OR (start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')})
    UNION ALL
    SELECT project_id, trace_id
    FROM rollup_ledger
    WHERE view = 'trace'
      AND ({everything:Bool} OR (hour >= {lo:DateTime('UTC')} AND hour < {hi:DateTime('UTC')}))
)

-- Copies the open deliveries whose newest row sits in a closed slot into the current slot, version unchanged, so the closed slot can be dropped; reads that slot plus, by primary key, the other rows of its open-looking keys (never the whole outbox), and writes only open rows.
INSERT INTO delivery_outbox
    (slot, project_id, trace_id, revision, concluded_at, last_activity_at, summary, status,
     attempts, first_attempt_at, next_attempt_at, last_error, updated_at)
SELECT
    {target:DateTime('UTC')}, project_id, trace_id, revision, concluded_at, last_activity_at,
    summary, status, attempts, first_attempt_at, next_attempt_at, last_error, updated_at
FROM delivery_outbox
WHERE slot = {slot:DateTime('UTC')}
  AND status IN ('pending', 'dead')
  AND (project_id, trace_id, revision, updated_at) IN
  (
      SELECT project_id, trace_id, revision, max(updated_at)
      FROM delivery_outbox
      WHERE (project_id, trace_id, revision) IN
      (
          SELECT project_id, trace_id, revision
          FROM delivery_outbox
          WHERE slot = {slot:DateTime('UTC')} AND status IN ('pending', 'dead')
      )
      GROUP BY project_id, trace_id, revision
  )

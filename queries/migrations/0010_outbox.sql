-- delivery_outbox replaces conclusion_outbox so that delivery cost no longer grows with
-- history. conclusion_outbox kept a tombstone for every delivered conclusion in one
-- partition, and every delivery pass read all of it with FINAL.
--
-- delivery_outbox is written in 5-minute slots: each row goes into the slot of its own
-- version (`updated_at`), so a delivery's state changes land in whatever slot is current
-- when they are written. A delivery's state is its newest row across all slots. Readers
-- take that with max/argMax over the table and never use FINAL, so ReplacingMergeTree
-- merges only shrink a slot (a pending row and its `delivered` row collapse into one).
-- Correctness does not depend on them.
--
-- Once a slot is closed (older than two slots), the delivery pass carries the deliveries
-- whose newest row is still open (pending or dead) in it into the current slot, keeping
-- their version, and then drops the slot. Dropping a partition is a metadata operation, not
-- a mutation, and a Replicated table replicates it. The table therefore holds about ten
-- minutes of delivery writes plus the open deliveries, however long the service has run.
CREATE TABLE IF NOT EXISTS delivery_outbox
(
    slot              DateTime('UTC'),
    project_id        LowCardinality(String),
    trace_id          String,
    revision          UInt32,
    concluded_at      DateTime64(6, 'UTC'),
    last_activity_at  DateTime64(6, 'UTC'),
    summary           String,
    status            LowCardinality(String),
    attempts          UInt16,
    first_attempt_at  Nullable(DateTime64(6, 'UTC')),
    next_attempt_at   DateTime64(6, 'UTC'),
    last_error        String,
    updated_at        DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
PARTITION BY slot
ORDER BY (project_id, trace_id, revision);

-- Fence before copying. After the rename, an older build that is still running (its pods
-- are replaced after `migrate`) can neither read nor write the old outbox, so its passes
-- fail and record nothing; the new build detects and delivers that work. Without the
-- fence, a conclusion recorded by an old pod after the copy would never be delivered. A
-- write already in flight at the moment of the rename is the one exception: it can land
-- after the copy. IF EXISTS makes a re-run after a partial run a no-op.
RENAME TABLE IF EXISTS conclusion_outbox TO conclusion_outbox_retired;

-- Re-run safety: if an earlier, partial run already dropped the retired table, this creates
-- an empty one for the next two statements (0003's definition).
CREATE TABLE IF NOT EXISTS conclusion_outbox_retired
(
    project_id        LowCardinality(String),
    trace_id          String,
    revision          UInt32,
    concluded_at      DateTime64(6, 'UTC'),
    last_activity_at  DateTime64(6, 'UTC'),
    summary           String,
    status            LowCardinality(String),
    attempts          UInt16,
    next_attempt_at   DateTime64(6, 'UTC'),
    last_error        String,
    updated_at        DateTime64(6, 'UTC'),
    is_deleted        UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (project_id, trace_id, revision);

-- Copy the open deliveries (pending, or dead awaiting a redrive) with their state and
-- version. FINAL here runs once, at migrate time. Each row goes into the slot of its
-- version, so a re-run writes the same rows into the same slots, where they collapse.
-- Older slots are carried forward by the first delivery pass. The retry window counts from
-- the first attempt, which the old outbox did not record: a delivery that was already
-- retried counts from its conclusion.
INSERT INTO delivery_outbox
    (slot, project_id, trace_id, revision, concluded_at, last_activity_at, summary, status,
     attempts, first_attempt_at, next_attempt_at, last_error, updated_at)
SELECT
    toStartOfFiveMinutes(updated_at), project_id, trace_id, revision, concluded_at,
    last_activity_at, summary, status, attempts,
    if(attempts = 0, NULL, concluded_at), next_attempt_at, last_error, updated_at
FROM conclusion_outbox_retired FINAL
WHERE status IN ('pending', 'dead');

DROP TABLE IF EXISTS conclusion_outbox_retired;

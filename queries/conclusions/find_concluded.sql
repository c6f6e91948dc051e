-- Traces of one shard that went quiet after the cursor and are not concluded at their last activity; reads only trace_activity rows with ingested_at > since (a primary-key range, so cost follows the write rate, not history) and primary-key lookups into conclusions.
WITH candidates AS
(
    SELECT project_id, trace_id, max(ingested_at) AS last_activity
    FROM trace_activity
    WHERE ingested_at > {since:DateTime64(6, 'UTC')}
      AND cityHash64(trace_id) % {shard_count:UInt32} = {shard_index:UInt32}
    GROUP BY project_id, trace_id
    HAVING last_activity <= {idle_before:DateTime64(6, 'UTC')}
),
previous AS
(
    -- Revisions are immutable, so max/argMax over all row versions needs no FINAL.
    SELECT
        project_id,
        trace_id,
        max(revision) AS last_revision,
        argMax(last_activity_at, revision) AS concluded_activity
    FROM conclusions
    WHERE (project_id, trace_id) IN (SELECT project_id, trace_id FROM candidates)
    GROUP BY project_id, trace_id
)
SELECT
    c.project_id AS project_id,
    c.trace_id AS trace_id,
    c.last_activity AS last_activity,
    ifNull(p.last_revision, 0) AS last_revision
FROM candidates AS c
LEFT JOIN previous AS p ON c.project_id = p.project_id AND c.trace_id = p.trace_id
-- An unmatched row (never concluded) carries defaults, or NULLs where a profile sets
-- join_use_nulls: both read as revision 0 at the epoch, so it passes with revision 1.
WHERE c.last_activity > ifNull(p.concluded_activity, toDateTime64(0, 6, 'UTC'))
ORDER BY c.last_activity, c.project_id, c.trace_id
LIMIT {limit:UInt32}

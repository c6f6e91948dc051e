-- First pass (no cursor yet): every trace is dirty; bounded by the raw tables' primary keys (one backfill).
INSERT INTO rollup_dirty_traces (pass, project_id, trace_id)
SELECT DISTINCT {pass:UInt64}, project_id, trace_id
FROM
(
    SELECT project_id, id AS trace_id FROM traces
    UNION ALL
    SELECT project_id, trace_id FROM observations
)

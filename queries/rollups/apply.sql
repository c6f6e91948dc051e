-- Bring one chunk of staged traces up to date in ONE insert: their live rows' contribution minus what their ledger rows hold, per trace row and aggregated into every bucket view, rows that cancel dropped; primary-key reads of the chunk's observations, traces and ledger rows, so the cost follows the chunk, not the history or the bucket sizes.
-- One writer at a time (service/rollups/ledger.py): two inserts computed against the same
-- ledger would both add the change. Re-running after a crash or a replay is exact: the delta
-- is taken against what the ledger holds, so an applied chunk gives an empty one.
-- insert_deduplicate = 0: two deltas of a trace can be byte-identical (A -> B, B -> A, A -> B)
-- and a Replicated table must not drop the second. One insert thread and squashing
-- thresholds no chunk reaches keep it one block, one part. The quorum and sequential
-- consistency settings make the next pass, on any replica, read what this one wrote (they
-- do nothing on tables that are not Replicated). Background work: one thread at a lower OS
-- priority (where the server may renice), so API reads keep a core.
INSERT INTO rollup_ledger
    (project_id, view, trace_id, kind, hour, model, provider, type, name, environment,
     n, input_tokens, output_tokens, cost_pico, errors, sum_ms, orphans, skewed,
     `histMap.slot`, `histMap.count`)
SETTINGS insert_deduplicate = 0, max_insert_threads = 1,
         min_insert_block_size_rows = 1000000000, min_insert_block_size_bytes = 100000000000,
         insert_quorum = 'auto', insert_quorum_parallel = 0, select_sequential_consistency = 1,
         max_threads = 1, os_thread_priority = 10
WITH
    keys AS
    (
        SELECT project_id, trace_id
        FROM rollup_batches
        WHERE batch = {batch:UInt64}
          AND (project_id, trace_id) > ({after_project:String}, {after_trace:String})
          AND (project_id, trace_id) <= ({last_project:String}, {last_trace:String})
    ),
    live AS
    (
        SELECT project_id, trace_id, start_time, end_time, model, provider, type, name,
               input_tokens, output_tokens, cost, status
        FROM observations FINAL
        WHERE (project_id, trace_id) IN (SELECT project_id, trace_id FROM keys)
    ),
    meta AS
    (
        SELECT project_id, id AS trace_id, name, environment
        FROM traces FINAL
        WHERE (project_id, id) IN (SELECT project_id, trace_id FROM keys)
    )
SELECT
    project_id,
    view,
    if(view = 'trace', trace_id, '') AS v_trace_id,
    kind,
    if(view IN ('day', 'day_model', 'day_name', 'day_total'), toStartOfDay(hour, 'UTC'), hour) AS v_hour,
    if(view IN ('trace', 'hour', 'day', 'hour_model', 'day_model'), model, '') AS v_model,
    if(view IN ('trace', 'hour', 'day'), provider, '') AS v_provider,
    if(view IN ('trace', 'hour', 'day'), type, '') AS v_type,
    if(view IN ('trace', 'hour', 'day', 'hour_name', 'day_name'), name, '') AS v_name,
    if(view IN ('trace', 'hour', 'day'), environment, '') AS v_environment,
    sum(d_n) AS s_n,
    sum(d_input_tokens) AS s_input_tokens,
    sum(d_output_tokens) AS s_output_tokens,
    sum(d_cost_pico) AS s_cost_pico,
    sum(d_errors) AS s_errors,
    sum(d_sum_ms) AS s_sum_ms,
    sum(d_orphans) AS s_orphans,
    sum(d_skewed) AS s_skewed,
    tupleElement(sumMap(d_slots, d_counts) AS s_histogram, 1) AS v_slots,
    tupleElement(s_histogram, 2) AS v_counts
FROM
(
    -- The change per trace row: now minus then.
    SELECT project_id, trace_id, kind, hour, model, provider, type, name, environment,
           sum(n) AS d_n,
           sum(input_tokens) AS d_input_tokens,
           sum(output_tokens) AS d_output_tokens,
           sum(cost_pico) AS d_cost_pico,
           sum(errors) AS d_errors,
           sum(sum_ms) AS d_sum_ms,
           sum(orphans) AS d_orphans,
           sum(skewed) AS d_skewed,
           sumMap(slots, counts) AS d_histogram,
           d_histogram.1 AS d_slots,
           d_histogram.2 AS d_counts
    FROM
    (
        {{rollups/observation_contributions}}
        UNION ALL
        {{rollups/trace_contributions}}
        UNION ALL
        SELECT project_id, trace_id, toString(kind), hour, model, provider, type, name,
               environment, -n, -input_tokens, -output_tokens, -cost_pico, -errors, -sum_ms,
               -orphans, -skewed, `histMap.slot`, arrayMap(c -> -c, `histMap.count`)
        FROM rollup_ledger
        WHERE view = 'trace'
          AND (project_id, trace_id) IN (SELECT project_id, trace_id FROM keys)
    )
    GROUP BY project_id, trace_id, kind, hour, model, provider, type, name, environment
    HAVING d_n != 0 OR d_input_tokens != 0 OR d_output_tokens != 0 OR d_cost_pico != 0
        OR d_errors != 0 OR d_sum_ms != 0 OR d_orphans != 0 OR d_skewed != 0
        OR notEmpty(d_slots)
)
ARRAY JOIN
    if(kind = 'observation',
       ['trace', 'hour', 'day', 'hour_model', 'day_model', 'hour_name', 'day_name', 'hour_total', 'day_total'],
       ['trace', 'hour_name', 'day_name', 'hour_total', 'day_total']) AS view
GROUP BY project_id, view, v_trace_id, kind, v_hour, v_model, v_provider, v_type, v_name,
         v_environment
HAVING s_n != 0 OR s_input_tokens != 0 OR s_output_tokens != 0 OR s_cost_pico != 0
    OR s_errors != 0 OR s_sum_ms != 0 OR s_orphans != 0 OR s_skewed != 0
    OR notEmpty(v_slots)

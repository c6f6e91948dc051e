-- Per-trace aggregates over live observations of the given traces; primary-key lookups by (project_id, trace_id).
SELECT
    project_id,
    trace_id,
    count() AS observations,
    countIf(end_time IS NULL) AS orphans,
    countIf(end_time IS NOT NULL AND end_time < start_time) AS skewed,
    countIf(status = 'error') AS errors,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost) AS cost,
    arraySort(groupUniqArrayIf(model, model != '')) AS models,
    min(start_time) AS first_start,
    maxOrNull(end_time) AS last_end
FROM observations FINAL
WHERE (project_id, trace_id) IN {keys:Array(Tuple(String, String))}
GROUP BY project_id, trace_id

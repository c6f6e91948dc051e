-- Observation latency computed from live raw rows (fallback and verification) with the ledger's own contribution rules: a FINAL scan of the project's observations starting in the range, O(rows in range).
WITH
    live AS
    (
        SELECT project_id, trace_id, start_time, end_time, model, provider, type, name,
               input_tokens, output_tokens, cost, status
        FROM observations FINAL
        WHERE project_id = {project_id:String}
          AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
    ),
    meta AS
    (
        SELECT project_id, id AS trace_id, name, environment
        FROM traces FINAL
        WHERE project_id = {project_id:String}
    ),
    contributions AS ({{rollups/observation_contributions}}),
    source AS ({{rollups/raw_histograms}})
{{rollups/latency_rows}}

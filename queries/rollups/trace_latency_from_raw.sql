-- Trace latency (last end - first start) computed from live raw rows (fallback and verification) with the ledger's own contribution rules: a FINAL scan of the project's observations starting in the range, then every observation of those traces, kept when the trace's first start is in the range; O(rows in range).
WITH
    live AS
    (
        SELECT project_id, trace_id, start_time, end_time, model, provider, type, name,
               input_tokens, output_tokens, cost, status
        FROM observations FINAL
        WHERE project_id = {project_id:String}
          AND trace_id IN
              (
                  SELECT trace_id FROM observations FINAL
                  WHERE project_id = {project_id:String}
                    AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
              )
    ),
    {{rollups/raw_trace_meta}},
    contributions AS
    (
        SELECT *
        FROM ({{rollups/trace_contributions}})
        WHERE hour >= {lo:DateTime('UTC')} AND hour < {hi:DateTime('UTC')}
    ),
    source AS ({{rollups/raw_histograms}}),
    {{rollups/running_histogram}}
{{rollups/latency_rows}}

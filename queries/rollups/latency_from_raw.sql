-- Observation latency computed from live raw rows (fallback and verification) with the ledger's own contribution rules: a FINAL scan of the project's observations starting in the range, O(rows in range).
WITH
    {{rollups/raw_live_in_range}},
    {{rollups/raw_trace_meta}},
    contributions AS ({{rollups/observation_contributions}}),
    source AS ({{rollups/raw_histograms}}),
    {{rollups/running_histogram}}
{{rollups/latency_rows}}

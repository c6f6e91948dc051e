-- Usage computed from live raw rows (the fallback and verification path) with the ledger's own contribution rules: a FINAL scan of the project's observations starting in the range, O(rows in range).
WITH
    {{rollups/raw_live_in_range}},
    {{rollups/raw_trace_meta}},
    source AS ({{rollups/observation_contributions}})
{{rollups/usage_rows}}

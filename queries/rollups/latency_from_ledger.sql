-- Latency per bucket and requested group keys for one project, range and level: ONE primary-key range read of the ledger's bucket rows, in the coarsest view holding the keys; histograms add per log bucket, so percentiles over any range are within 1% of the value at their rank.
WITH source AS
(
    SELECT hour, model, provider, type, name, environment, n, sum_ms, orphans, skewed,
           `histMap.slot` AS slots, `histMap.count` AS counts
    FROM rollup_ledger
    WHERE {{rollups/ledger_range}}
)
{{rollups/latency_rows}}

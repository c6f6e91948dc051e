-- Fragment (a query): the CTE `contributions` (what live rows contribute, one row each) added up per read bucket and requested group keys, histograms merged by sumMap, in the shape of the ledger's bucket rows; so the raw path lays out one dense histogram per group, not one per row.
SELECT bucket AS hour, g_model AS model, g_provider AS provider, g_type AS type,
       g_name AS name, g_environment AS environment,
       sum(n) AS n, sum(sum_ms) AS sum_ms, sum(orphans) AS orphans, sum(skewed) AS skewed,
       tupleElement(sumMap(h_slots, h_counts) AS histogram, 1) AS slots,
       tupleElement(histogram, 2) AS counts
FROM
(
    SELECT {{rollups/read_keys}}, n, sum_ms, orphans, skewed,
           slots AS h_slots, counts AS h_counts
    FROM contributions
)
GROUP BY bucket, g_model, g_provider, g_type, g_name, g_environment

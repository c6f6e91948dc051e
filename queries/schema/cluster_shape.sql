-- How many shards and hosts TA_CLICKHOUSE_CLUSTER has (system.clusters: a few rows per cluster).
SELECT uniqExact(shard_num) AS shards, count() AS hosts
FROM system.clusters
WHERE cluster = {cluster:String}

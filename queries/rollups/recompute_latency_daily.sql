-- Recompute the daily latency rows (histograms merged by sumForEach) of the given (project, day) pairs from the published hourly rows, unpublished under a fresh version; bounded by the days' sort-key ranges.
INSERT INTO latency_rollup
    (project_id, level, grouping, daily, bucket, version, name, model, provider, type,
     count, sum_ms, max_ms, orphans, skewed, histogram)
SELECT
    project_id, level, grouping, true, toStartOfDay(bucket, 'UTC') AS d, {version:UInt64},
    name, model, provider, type,
    sum(count), sum(sum_ms), max(max_ms), sum(orphans), sum(skewed), sumForEach(histogram)
FROM latency_rollup
WHERE project_id IN {projects:Array(String)}
  AND NOT daily
  AND bucket >= {dlo:DateTime('UTC')} AND bucket < {dhi:DateTime('UTC')}
  AND NOT published
  AND (project_id, toStartOfDay(bucket, 'UTC')) IN {days:Array(Tuple(String, DateTime('UTC')))}
  AND (project_id, bucket, version) IN
      (
          SELECT project_id, hour, max(version)
          FROM rollup_bucket_versions
          WHERE project_id IN {projects:Array(String)}
            AND hour >= {dlo:DateTime('UTC')} AND hour < {dhi:DateTime('UTC')}
          GROUP BY project_id, hour
      )
GROUP BY project_id, level, grouping, d, name, model, provider, type

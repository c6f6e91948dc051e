-- Recompute the daily usage rows of the given (project, day) pairs from the published hourly rows, unpublished under a fresh version; bounded by the days' (project_id, daily, bucket) sort-key ranges.
INSERT INTO usage_rollup
    (project_id, grouping, daily, bucket, version, model, provider, type, name, environment,
     observations, input_tokens, output_tokens, total_tokens, cost, errors)
SELECT
    project_id, grouping, true, toStartOfDay(bucket, 'UTC') AS d, {version:UInt64},
    model, provider, type, name, environment,
    sum(observations), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost),
    sum(errors)
FROM usage_rollup
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
GROUP BY project_id, grouping, d, model, provider, type, name, environment

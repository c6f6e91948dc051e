-- Drop usage rows and markers older than the just-published versions of the same hours and days (never a published one: it is >= that version); one lightweight delete per chunk for both grains, sort-key bounded; asynchronous: reads never need it (they keep only published versions), it only reclaims space, so a pass never waits on a merge for it.
DELETE FROM usage_rollup
WHERE project_id IN {projects:Array(String)}
  AND ((NOT daily
        AND bucket >= {lo:DateTime('UTC')} AND bucket < {hi:DateTime('UTC')}
        AND (project_id, bucket) IN {buckets:Array(Tuple(String, DateTime('UTC')))}
        AND version < {version:UInt64})
       OR (daily
           AND bucket >= {dlo:DateTime('UTC')} AND bucket < {dhi:DateTime('UTC')}
           AND (project_id, bucket) IN {days:Array(Tuple(String, DateTime('UTC')))}
           AND version < {day_version:UInt64}))
SETTINGS lightweight_deletes_sync = 0

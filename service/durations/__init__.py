"""Named durations: definitions (two anchors), materialization on conclusion, reads.

`definitions` validates what users send, `catalog` stores definitions, `anchors` and `plan`
decide (pure), `materialize` writes, `results` reads. The backfill job that pages through
concluded traces is `service.jobs.durations_backfill`, beside the rollups one, so this
package does not depend on the jobs machinery.
"""

"""Named durations: definitions (two anchors), materialization on conclusion, reads, backfills.

`definitions` validates what users send, `catalog` stores definitions, `anchors` and `plan`
decide (pure), `materialize` writes, `results` reads, `backfill` pages through concluded
traces.
"""

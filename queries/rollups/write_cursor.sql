-- Record how far the rollup has caught up; ReplacingMergeTree(cursor) keeps the furthest value.
INSERT INTO rollup_state (name, cursor)
VALUES ({name:String}, {cursor:DateTime64(6, 'UTC')})

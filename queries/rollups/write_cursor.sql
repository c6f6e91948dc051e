-- Record how far the rollups have caught up; ReplacingMergeTree(cursor) keeps the furthest value.
INSERT INTO rollup_state (name, cursor)
SETTINGS insert_quorum = 'auto', insert_quorum_parallel = 0
VALUES ({name:String}, {cursor:DateTime64(6, 'UTC')})

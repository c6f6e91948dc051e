-- The rollup pass cursor (max wins, so a late write can only move it forward); a one-row key range of rollup_state.
SELECT max(cursor) AS cursor, count() AS passes
FROM rollup_state
WHERE name = {name:String}
SETTINGS select_sequential_consistency = 1

-- The rollup pass cursor (max wins, so overlapping passes can only move it forward); one-row table.
SELECT max(cursor) AS cursor, count() AS passes
FROM rollup_state
WHERE name = {name:String}

-- The projects that have a live duration definition of this name (the table is small: a
-- project has a few definitions).
SELECT project_id
FROM duration_definitions FINAL
WHERE name = {name:String}
ORDER BY project_id
LIMIT {limit:UInt32}

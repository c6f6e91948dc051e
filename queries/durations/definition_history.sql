-- Highest version and first creation of a definition name, tombstones included (primary-key lookup).
SELECT max(version) AS last_version, count() AS versions
FROM duration_definitions
WHERE project_id = {project_id:String} AND name = {name:String}

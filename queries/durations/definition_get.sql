-- One live duration definition by (project, name): a primary-key lookup.
SELECT project_id, name, version, spec, created_at, updated_at
FROM duration_definitions FINAL
WHERE project_id = {project_id:String} AND name = {name:String}

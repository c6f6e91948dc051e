-- The live duration definitions of one project (primary-key range; a project has few).
SELECT project_id, name, version, spec, created_at, updated_at
FROM duration_definitions FINAL
WHERE project_id = {project_id:String}
ORDER BY name

-- The live duration definitions of the given projects (primary-key ranges; a project has few).
SELECT project_id, name, version, spec, created_at, updated_at
FROM duration_definitions FINAL
WHERE project_id IN {projects:Array(String)}
ORDER BY project_id, name

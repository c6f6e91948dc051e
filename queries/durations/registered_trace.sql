-- Whether (and at which revision) a trace's durations are materialized: a primary-key lookup.
SELECT revision
FROM duration_traces FINAL
WHERE project_id = {project_id:String} AND trace_id = {trace_id:String}

-- A trace's latest conclusion and its last activity (max ingested_at over every row version, deletes included); three primary-key ranges on (project_id, trace_id).
SELECT
    (SELECT max(revision) FROM conclusions
     WHERE project_id = {project_id:String} AND trace_id = {trace_id:String}) AS revision,
    (SELECT argMax(last_activity_at, revision) FROM conclusions
     WHERE project_id = {project_id:String} AND trace_id = {trace_id:String}) AS concluded_activity,
    greatest(
        (SELECT max(ingested_at) FROM observations
         WHERE project_id = {project_id:String} AND trace_id = {trace_id:String}),
        (SELECT max(ingested_at) FROM traces
         WHERE project_id = {project_id:String} AND id = {trace_id:String})
    ) AS last_activity

-- Whether a live trace row or any live observation exists for this key (two primary-key lookups).
SELECT
    (SELECT count() FROM traces FINAL
     WHERE project_id = {project_id:String} AND id = {trace_id:String})
  + (SELECT count() FROM observations FINAL
     WHERE project_id = {project_id:String} AND trace_id = {trace_id:String}) AS found

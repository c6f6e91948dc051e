-- After a successful pass, narrow each dirty trace's memory to the hours it had when the pass read it, unless a newer pass wrote since.
INSERT INTO rollup_trace_hours (project_id, trace_id, hours, current_hours, version)
SELECT project_id, trace_id, current_hours, current_hours, {new_version:UInt64}
FROM rollup_trace_hours
WHERE version = {version:UInt64}
  AND (project_id, trace_id) IN
      (SELECT project_id, trace_id FROM rollup_dirty_traces WHERE pass = {pass:UInt64})
  AND (project_id, trace_id) NOT IN
      (
          SELECT project_id, trace_id
          FROM rollup_trace_hours
          WHERE version > {version:UInt64}
            AND (project_id, trace_id) IN
                (SELECT project_id, trace_id FROM rollup_dirty_traces WHERE pass = {pass:UInt64})
      )

-- Point the bucket → trace index at each dirty trace's hours as this pass read them (live) and tombstone the remembered hours it left; primary-key lookups by trace in the memory, rows written ≈ hours per dirty trace.
INSERT INTO rollup_hour_traces (project_id, hour, trace_id, version, is_deleted)
SELECT project_id, hour, trace_id, {version:UInt64}, toUInt8(NOT has(current_hours, hour))
FROM rollup_trace_hours
ARRAY JOIN hours AS hour
WHERE version = {version:UInt64}
  AND (project_id, trace_id) IN
      (SELECT project_id, trace_id FROM rollup_dirty_traces WHERE pass = {pass:UInt64})

-- Point the bucket → trace index at the hours of every trace remembered under one version (live: current hours; tombstone: remembered hours it left); reads the memory table's version column, rows written ≈ hours per remembered trace.
INSERT INTO rollup_hour_traces (project_id, hour, trace_id, version, is_deleted)
SELECT project_id, hour, trace_id, {version:UInt64}, toUInt8(NOT has(current_hours, hour))
FROM rollup_trace_hours
ARRAY JOIN hours AS hour
WHERE version = {version:UInt64}

-- Fragment (a WITH-list entry): `live`, the project's live observations (FINAL) starting in [lo, hi), with the columns the contribution rules read; the raw path's O(rows in range) scan.
live AS
(
    SELECT project_id, trace_id, start_time, end_time, model, provider, type, name,
           input_tokens, output_tokens, cost, status
    FROM observations FINAL
    WHERE project_id = {project_id:String}
      AND start_time >= {lo:DateTime('UTC')} AND start_time < {hi:DateTime('UTC')}
)

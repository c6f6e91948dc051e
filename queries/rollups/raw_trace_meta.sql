-- Fragment (a WITH-list entry): `meta`, the project's live trace records (FINAL), the trace name and environment the contribution rules group by.
meta AS
(
    SELECT project_id, id AS trace_id, name, environment
    FROM traces FINAL
    WHERE project_id = {project_id:String}
)

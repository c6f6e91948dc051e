-- One job's newest state: a primary-key lookup on the small jobs table.
SELECT *
FROM jobs FINAL
WHERE id = {id:String}

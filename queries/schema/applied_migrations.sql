-- Applied migrations with their checksums; reads a table with one row per migration file.
SELECT name, argMax(checksum, applied_at) AS checksum
FROM schema_migrations
GROUP BY name
ORDER BY name

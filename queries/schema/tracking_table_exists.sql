-- Whether the schema_migrations table exists yet (one row from system.tables, no data read).
SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'schema_migrations'

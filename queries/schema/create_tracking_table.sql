-- The table that records which migration files were applied, by name and checksum (tiny).
CREATE TABLE IF NOT EXISTS schema_migrations
(
    name        String,
    checksum    String,
    applied_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY name

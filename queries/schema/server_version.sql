-- The engine's ClickHouse version (the start-up version gate compares it).
SELECT version()

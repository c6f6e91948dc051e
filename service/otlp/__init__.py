"""OTLP/HTTP trace ingest: decode, map to ingest records, validate."""

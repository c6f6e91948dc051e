"""Chunked background jobs (backfills) with persisted progress; see `runner` for guarantees."""

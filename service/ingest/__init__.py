"""Ingest: request models and the writer for traces and observations."""

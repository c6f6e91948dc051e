"""Traces: the raw-derived summary of a trace, and soft deletion."""

"""Ingest: what the ingest endpoints accept, and how it is written.

* `models` — the pydantic request models: the contract, its limits, every error message.
* `decode` — the msgspec hot path that stands in for the models on the bodies they accept.
* `rows` — validated records as insert columns (`Batch`, then `IngestRows` once projects
  are resolved): the unit every ingest endpoint hands to the writer.
* `writer` — group commit (`IngestWriter.submit` / `.write`) and the direct `write_rows`.
"""

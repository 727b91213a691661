"""Getting data in: the Segment-compatible HTTP API, the ingest buffer, the loader, bulk importers."""

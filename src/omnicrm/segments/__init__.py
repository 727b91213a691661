"""Segments: rules over tags and behaviour, compiled to Ibis; saved segments, snapshots and diffs."""

"""Ingestion: Segment-spec calls in, profiles and the event log out, listeners told."""

"""Segmentation: rules a marketer edits as YAML, kept exact and fresh as events arrive and as time passes."""

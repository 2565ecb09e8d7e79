"""Growth Engine: marketing automation for marketplaces (segments, flows, guardrails, optimization)."""

__version__ = "0.1.0"

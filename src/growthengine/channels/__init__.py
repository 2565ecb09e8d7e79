"""Channels: one interface, a registry of providers, the local outbox when no credentials are set."""

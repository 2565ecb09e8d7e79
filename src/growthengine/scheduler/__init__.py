"""Durable timers: claim due work, run it at its due time, retry with backoff."""

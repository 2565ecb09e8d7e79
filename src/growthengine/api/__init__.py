"""The HTTP API: parse, call the engine, answer. No business rules here."""

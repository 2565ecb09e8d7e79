"""Plain data of the engine: calls and events, profiles, messages. No I/O here."""

"""Storage: one port, two adapters (SQLite embedded default, PostgreSQL for production), one schema."""

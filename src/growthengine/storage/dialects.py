"""The few statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert_for(dialect: str, table: sa.Table) -> Any:
    """An INSERT that supports ``on_conflict_do_update`` / ``on_conflict_do_nothing`` on this dialect."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)

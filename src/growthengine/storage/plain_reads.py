"""Reads that must not wait for, or hold up, the engine's writers (health checks, metrics scrapes, key lookups).

On SQLite every transaction of the engine starts with ``BEGIN IMMEDIATE`` (one writer at a time), so a read in a
transaction would queue behind the ingest writer and block it while it runs. These reads take a pooled
connection's driver connection directly: on SQLite (autocommit, WAL) each statement reads a snapshot without any
write lock; on PostgreSQL the statement runs in a short transaction of its own, rolled back at once.
Parameters are written ``?`` (made ``%s`` for PostgreSQL's driver).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from growthengine.storage.unit_of_work import Store


def read(store: Store, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows of one read-only statement."""
    if store.dialect == "postgresql":
        sql = sql.replace("?", "%s")
    conn = store.engine.raw_connection()
    try:
        cursor = conn.cursor()
        try:
            cursor.execute(sql, tuple(params))
            rows = [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()
        if store.dialect == "postgresql":
            conn.rollback()
        return rows
    finally:
        conn.close()  # back to the pool

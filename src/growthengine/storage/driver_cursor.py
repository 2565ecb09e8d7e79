"""Statements handed straight to the database driver's cursor, inside the connection's open transaction.

For the statements that run once per fired instant (100,000 cart timers due milliseconds apart are 100,000
instants: the timer claim, the savepoint, the segment stage's states, fences, members, transitions and timers, the
bulk writes of ``bulk_rows.py``): SQLAlchemy's ``exec_driver_sql`` costs three to four times what the driver itself
spends on such a statement (its result set-up, events and bookkeeping). The SQL is plain text with the driver's own
parameter marker (``marker(dialect)``); every value is a parameter. These statements are not seen by SQLAlchemy's
event hooks.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any

import sqlalchemy as sa


def driver_rows(conn: sa.Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows ``sql`` returns, run by the driver in ``conn``'s transaction."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, tuple(params))
        return list(cursor.fetchall()) if cursor.description is not None else []
    finally:
        cursor.close()


def driver_run(conn: sa.Connection, sql: str, params: Sequence[Any] = ()) -> None:
    """Run ``sql`` (no rows wanted) by the driver in ``conn``'s transaction."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, tuple(params))
    finally:
        cursor.close()


def driver_many(conn: sa.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql`` once per row of ``rows`` (the driver's ``executemany``) in ``conn``'s transaction."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


VALUES_CHUNKS = (512, 64, 16, 4, 1)
"""Rows a statement of :func:`driver_values` (greedy: 700 rows are 512 + 2 x 64 + 3 x 16 + 3 x 4), fewer for wide
rows.

Few, large statements matter most inside a savepoint (every pipeline stage runs in one): with ``temp_store=MEMORY``
SQLite keeps the savepoint's journal of original pages in memory, and each multi-row statement, which opens and
releases a statement savepoint of its own, walks that journal from its start when it is released. 200,000 commands
of a price drop's fan-out written 64 rows a statement cost 18.5 us a row (the later, the dearer) against 2.6 us
a row 512 rows a statement (``benchmarks/README.md``, "Send path, fourth pass")."""
MAX_PARAMETERS = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
"""What one SQLite statement may take: 999 in builds before 3.32, 32,766 since."""


def driver_values(conn: sa.Connection, head: str, tail: str, width: int, rows: Sequence[Sequence[Any]]) -> None:
    """``head VALUES (?, ...), (?, ...), ... tail`` for ``rows`` of ``width`` values (SQLite), in their order, a
    few statements in all (:data:`VALUES_CHUNKS`, at most :data:`MAX_PARAMETERS` values a statement) instead of
    one execution per row.

    ``executemany`` lets go of the GIL around each row's step and must take it back after each: beside a busy
    event loop (the API parsing the next requests) the writer then waits for the GIL once per row. A statement of
    64 rows lets go of it once, for longer, while the loop works."""
    most = max(1, MAX_PARAMETERS // width)
    sizes = sorted({min(size, most) for size in VALUES_CHUNKS}, reverse=True)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        at, count = 0, len(rows)
        for size in sizes:
            while count - at >= size:
                cursor.execute(_values_sql(head, tail, width, size), list(chain.from_iterable(rows[at:at + size])))
                at += size
    finally:
        cursor.close()


@functools.lru_cache(maxsize=256)
def _values_sql(head: str, tail: str, width: int, size: int) -> str:
    one = "(" + ", ".join(["?"] * width) + ")"
    return f"{head} VALUES {', '.join([one] * size)} {tail}"


class DriverSavepoint:
    """A savepoint set and released by the driver (what ``Connection.begin_nested`` does, without its
    bookkeeping), for work that must be undone alone if it fails: ``with DriverSavepoint(conn, "name"):``."""

    __slots__ = ("_conn", "_name")

    def __init__(self, conn: sa.Connection, name: str) -> None:
        self._conn = conn
        self._name = name

    def __enter__(self) -> DriverSavepoint:
        driver_run(self._conn, f"SAVEPOINT {self._name}")
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            driver_run(self._conn, f"ROLLBACK TO SAVEPOINT {self._name}")
        driver_run(self._conn, f"RELEASE SAVEPOINT {self._name}")

"""Many rows written in one statement.

On PostgreSQL a batch of rows goes as one array per column through ``unnest``: one statement, planned once, instead
of one execution per row (psycopg's ``executemany``, which costs the server a parse-bind-execute round per row and
was the larger part of its CPU under a worker's batches). The arrays go in psycopg's binary format (``%b``): its
text format quotes every element through a regular expression in Python, 5-7 times slower for 20,000 JSON texts
(a price drop's fan-out, the event append). On SQLite a few multi-row ``VALUES`` statements
(``driver_values``): ``executemany`` hands the GIL back and takes it again for every row. Both go straight to the
driver (``driver_cursor.py``: the segment stage writes once per fired timer instant). The SQL is built from
constant names and type names only; every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import sqlalchemy as sa

from growthengine.storage.driver_cursor import driver_run, driver_values

Row = tuple[Any, ...]


def write_rows(conn: sa.Connection, dialect: str, head: str, tail: str, pg_types: Sequence[str], rows: Sequence[Row],
               *, key: Callable[[Row], Hashable] | None = None) -> None:
    """``head`` (``INSERT INTO t (a, b)``) with ``rows`` as its source, then ``tail`` (``ON CONFLICT ...`` or
    empty). ``pg_types``: each column's PostgreSQL type. ``key``: an upsert's conflict key; when given, only the
    last row of each key is written (one statement may not update a row twice; row by row, the last one won)."""
    if not rows:
        return
    if key is not None:
        rows = list({key(row): row for row in rows}.values())
    if dialect == "postgresql":
        arrays = ", ".join(f"%b::{t}[]" for t in pg_types)  # binary: no per-element quoting in Python
        driver_run(conn, f"{head} SELECT * FROM unnest({arrays}) {tail}",  # noqa: S608
                   tuple(list(column) for column in zip(*rows, strict=True)))
        return
    driver_values(conn, head, tail, len(pg_types), rows)

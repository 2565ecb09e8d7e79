"""``write_rows`` on SQLite: a few multi-row statements, every row in its order, the last of a key winning, and
wide rows kept within SQLite's parameter limit."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from growthengine.storage.bulk_rows import write_rows
from growthengine.storage.driver_cursor import MAX_PARAMETERS


def test_rows_are_written_in_order_and_an_upserts_last_row_of_a_key_wins() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
        rows = [(i % 150, f"v{i}", i) for i in range(317)]  # 317 = 4 x 64 + 3 x 16 + 3 x 4 + 1
        write_rows(conn, "sqlite", "INSERT INTO t (k, v, n)", "ON CONFLICT (k) DO UPDATE SET v = excluded.v, "
                   "n = excluded.n", ("bigint", "text", "bigint"), rows)
        stored = conn.exec_driver_sql("SELECT k, v, n FROM t ORDER BY k").all()
    assert stored == [(k, f"v{n}", n) for k, n in sorted({i % 150: i for i in range(317)}.items())]


def test_wide_rows_stay_within_the_parameter_limit() -> None:
    width = 40  # 64 rows of 40 values would be 2,560 parameters
    engine = sa.create_engine("sqlite://")
    columns = [f"c{i}" for i in range(width)]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE w ({', '.join(columns)})")
        rows = [tuple(r * width + c for c in range(width)) for r in range(101)]
        seen: list[int] = []
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.set_trace_callback(lambda sql: seen.append(sql.count("),") + 1) if sql.startswith("INSERT") else None)
        write_rows(conn, "sqlite", f"INSERT INTO w ({', '.join(columns)})", "", ["bigint"] * width, rows)
        raw.set_trace_callback(None)
        stored = conn.exec_driver_sql(f"SELECT {', '.join(columns)} FROM w ORDER BY c0").all()
    assert [tuple(r) for r in stored] == rows
    assert max(seen) * width <= MAX_PARAMETERS and sum(seen) == 101 and len(seen) < 101 / 4



@pytest.mark.parametrize(("width", "count"), [(7, 2000), (100, 700)])
def test_many_rows_take_few_statements_each_within_the_parameter_limit(width: int, count: int) -> None:
    """Inside a savepoint (every pipeline stage runs in one) each multi-row statement costs a walk of SQLite's
    in-memory journal: 2,000 rows go in 3 + 7 + 1 statements of 512, 64 and 16 rows (11, not 32 of 64 rows)."""
    engine = sa.create_engine("sqlite://")
    columns = [f"c{i}" for i in range(width)]
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE m ({', '.join(columns)})")
        conn.exec_driver_sql("SAVEPOINT stage")
        rows = [tuple(r * width + c for c in range(width)) for r in range(count)]
        seen: list[int] = []
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.set_trace_callback(lambda sql: seen.append(sql.count("),") + 1) if sql.startswith("INSERT") else None)
        write_rows(conn, "sqlite", f"INSERT INTO m ({', '.join(columns)})", "", ["bigint"] * width, rows)
        raw.set_trace_callback(None)
        conn.exec_driver_sql("RELEASE SAVEPOINT stage")
        stored = conn.exec_driver_sql(f"SELECT {', '.join(columns)} FROM m ORDER BY c0").all()
    assert [tuple(r) for r in stored] == rows
    assert sum(seen) == count and max(seen) * width <= MAX_PARAMETERS
    if width == 7:
        assert seen == [512] * 3 + [64] * 7 + [16]
    else:  # at most 327 rows of 100 values a statement (32,766 parameters; 9 rows before SQLite 3.32)
        assert max(seen) == min(512, MAX_PARAMETERS // width)

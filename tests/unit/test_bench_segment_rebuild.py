"""``growth bench segments --rebuild`` at a tiny size: Python, SQL on SQLite and PostgreSQL, and DuckDB find the same
members of the five default segments, and every figure is measured. Not a timing test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from growthengine.bench.segment_rebuild import BenchError, RebuildSize, run_duckdb, run_rebuild_bench
from growthengine.cli.app import app
from tests.pg_cluster import PgCluster


def _stage(name: str, total: int) -> Callable[[int], None]:
    return lambda n: None


@pytest.mark.postgres
def test_rebuild_bench_agrees_three_ways(tmp_path: Path, pg_cluster: PgCluster) -> None:
    report = run_rebuild_bench(RebuildSize(users=300, events=6_000), tmp_path, _stage, pg_cluster.new_database())
    # Each run checks the others found the same members; the defaults all have some at this size.
    assert set(report.members) == {"high_ltv", "window_shoppers", "local_buyers", "cart_abandoners", "churn_risk"}
    assert report.python is not None and report.python.seconds > 0
    assert report.sql_sqlite.seconds > 0 and report.sql_pg is not None
    assert report.sql_sqlite.details["entered"] == sum(report.members.values())
    phases = dict((name, seconds) for name, seconds, _, _ in report.sql_sqlite.details["phases"])
    assert {"typed events", "log's users", "verdicts", "writes"} <= set(phases)
    assert sum(phases.values()) <= report.sql_sqlite.seconds
    # PostgreSQL's own work, read from its backend (the server runs here): counted per phase and in all
    assert "server_cpu_s" not in report.sql_sqlite.details
    server = [srv for _, _, _, srv in report.sql_pg.details["phases"]]
    assert all(srv is not None and srv >= 0 for srv in server) and sum(server) > 0
    assert report.sql_pg.details["server_cpu_s"] == pytest.approx(sum(server))
    assert report.duckdb_query_s > 0 and report.duckdb_load_s > 0 and report.ratio > 0


def test_rebuild_bench_on_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "segments", "--rebuild", "--users", "100", "--events", "1000",
                                      "--db-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "SQL (SQLite) / DuckDB" in result.output and "members (the same every way)" in result.output
    assert "SQL rebuild (SQLite), its phases" in result.output and "typed events" in result.output


@pytest.mark.postgres
def test_without_the_python_rebuild_sql_is_checked_against_duckdb(tmp_path: Path, pg_cluster: PgCluster) -> None:
    report = run_rebuild_bench(RebuildSize(users=300, events=6_000), tmp_path, _stage, pg_cluster.new_database(),
                               python=False)
    assert report.python is None and not (tmp_path / "rebuild-python.db").exists()
    # the PostgreSQL rebuild ran on the SQLite file's rows, copied: the same members as DuckDB's
    assert report.sql_pg is not None and report.sql_pg.details["members"] == report.members
    assert set(report.members) == {"high_ltv", "window_shoppers", "local_buyers", "cart_abandoners", "churn_risk"}
    result = CliRunner().invoke(app, ["bench", "segments", "--rebuild", "--no-python", "--users", "100", "--events",
                                      "1000", "--db-dir", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "members (the same every way)" in result.output


def test_a_missing_duckdb_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "duckdb", None)  # as if the dev extras were not installed
    with pytest.raises(BenchError, match="dev extras"):
        run_duckdb(tmp_path / "none.csv", 0)

"""``growth bench segments --rebuild``: the full rebuild of the five default segments in Python, in SQL (SQLite,
and PostgreSQL with ``--pg``) and by DuckDB's queries on the same rows (figures in benchmarks/README.md, "Set-based
rebuilds")."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from growthengine.cli.bench import _in_dir, _load, _progress, _RichStages, machine_summary
from growthengine.cli.options import CliError, console, out


def rebuild_bench(users: int, events: int, db_dir: Path | None, pg: str | None, *, python: bool = True) -> None:
    from growthengine.bench import segment_rebuild as bench

    if users < 1 or events < 1:
        raise CliError("--users and --events must be at least 1")
    size = bench.RebuildSize(users=users, events=events)
    console.print(f"[bold]growth bench segments --rebuild[/]: {users:,} users, {events:,} events over "
                  f"{bench.SPAN_DAYS} days; {machine_summary()}; {_load()}")
    with _progress() as progress:
        stage = _RichStages(progress).stage
        try:
            r = _in_dir(db_dir, lambda d: bench.run_rebuild_bench(size, d, stage, pg, python=python))
        except bench.BenchError as exc:
            raise CliError(str(exc)) from None
    assert isinstance(r, bench.RebuildBench)
    table = Table(title=f"Full rebuild of the five default segments: {events:,} events, {users:,} users")
    for column in ("how", "seconds", "events/s", "vs DuckDB", "note"):
        table.add_column(column, justify="left" if column in ("how", "note") else "right")
    duck = r.duckdb_query_s
    if r.python is None:
        table.add_row("Python rebuild (SQLite)", "", "", "", "skipped (--no-python); members checked against DuckDB")
    for m in (r.python, r.sql_sqlite, r.sql_pg):
        if m is not None:
            server = m.details.get("server_cpu_s")
            table.add_row(m.name, f"{m.seconds:,.2f}", f"{m.rate:,.0f}", f"{m.seconds / duck:,.1f} x" if duck else "",
                          f"CPU {m.cpu_s:,.1f} s (this process)"
                          f"{'' if server is None else f', {server:,.1f} s (the server)'}; "
                          f"{m.details['entered']:,} entries")
    table.add_row("DuckDB, queries", f"{duck:,.2f}", f"{events / duck if duck else 0:,.0f}", "1.0 x",
                  f"in a subprocess; its load of the exported file {r.duckdb_load_s:,.2f} s")
    table.add_row("DuckDB, load + queries", f"{r.duckdb_load_s + duck:,.2f}", "", "",
                  f"the export to typed columns (not counted) {r.export_s:,.1f} s")
    out.print(table)
    versus = (f"; SQL vs Python: {r.python.seconds / r.sql_sqlite.seconds if r.sql_sqlite.seconds else 0:,.1f} x "
              "faster" if r.python is not None else "")
    target = bench.TARGET_REBUILD_S
    verdicts = ", ".join(f"{m.name} {m.seconds:,.1f} s {'<' if m.seconds < target else '>='} {target:.0f} s"
                         for m in (r.sql_sqlite, r.sql_pg) if m is not None)
    out.print(f"SQL (SQLite) / DuckDB: {r.ratio:,.1f} x (goal: within {bench.TARGET_DUCKDB_RATIO:.0f} x){versus}")
    if r.sql_pg is not None and duck:
        out.print(f"SQL (PostgreSQL) / DuckDB: {r.sql_pg.seconds / duck:,.1f} x (goal: within "
                  f"{bench.TARGET_DUCKDB_RATIO:.0f} x)")
    out.print(f"{verdicts} (the target, {target:.0f} s, is stated for {10_000_000:,} events)")
    for m in (r.sql_sqlite, r.sql_pg):
        if m is not None and m.details.get("phases"):
            server = any(p[3] is not None for p in m.details["phases"])
            out.print(f"{m.name}, its phases (elapsed / CPU of this process{' / the server' if server else ''}): "
                      + ", ".join(f"{name} {seconds:,.2f} / {cpu:,.2f}"
                                  f"{'' if srv is None else f' / {srv:,.2f}'} s"
                                  for name, seconds, cpu, srv in m.details["phases"]))
    out.print("members (the same every way): " + ", ".join(f"{k} {v:,}" for k, v in sorted(r.members.items())))

"""``growth bench import``: ``growth import`` stored and applied, against the target (figures in
benchmarks/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from growthengine.cli.bench import _DB_DIR, _in_dir, _progress, _RichStages, app, machine_summary
from growthengine.cli.options import CliError, console, out


@app.command("import")
def import_bench(
    events: Annotated[int, typer.Option(help="lines in the history file")] = 200_000,
    users: Annotated[int, typer.Option(help="users in the history")] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed of the history")] = 7,
    db_dir: Annotated[Path | None, _DB_DIR] = None,
) -> None:
    """growth import: lines stored per second (validated, deduplicated, appended), then applied by the stages."""
    from growthengine.bench import history_import as bench
    from growthengine.bench.ingest import BenchError

    if events < 1 or users < 1:
        raise CliError("--events and --users must be at least 1")
    console.print(f"[bold]growth bench import[/]: {events:,} lines, {users:,} users; {machine_summary()}")
    with _progress() as progress:
        stage = _RichStages(progress).stage
        try:
            r = _in_dir(db_dir, lambda d: bench.run_import_bench(events, users, d, stage, seed))
        except BenchError as exc:
            raise CliError(f"benchmark failed: {exc}") from None
    assert isinstance(r, bench.ImportBench)
    table = Table(title=f"growth import: {events:,} lines (SQLite)")
    for column in ("part", "seconds", "events/s", "CPU s", "target"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for m in (r.stored, r.applied, r.again):
        target = f">= {bench.TARGET_RATE:,.0f}/s" if m is r.stored else ""
        table.add_row(m.name, f"{m.seconds:,.2f}", f"{m.rate:,.0f}", f"{m.cpu_s:,.2f}", target)
    total = r.stored.seconds + r.applied.seconds
    table.add_row("stored + applied", f"{total:,.2f}", f"{r.stored.events / total if total else 0:,.0f}", "", "")
    out.print(table)
    out.print(f"stored: {r.stored.rate:,.0f} events/s (goal >= {bench.TARGET_RATE:,.0f}), "
              f"{r.stored.events / r.stored.cpu_s if r.stored.cpu_s else 0:,.0f} per CPU second")
    out.print(f"{len(r.bad)} bad lines reported by number; a second import stored nothing")

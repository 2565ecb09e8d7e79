"""``growth bench segments --instant``: segment timers due at one instant, the segment stage's own share (figures in
benchmarks/README.md, "Segment timers at one instant")."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from growthengine.cli.bench import _in_dir, _load, _progress, _RichStages, _verdict, machine_summary
from growthengine.cli.options import CliError, console, out


def instant_bench(timers: int, flows: bool, cold: bool, db_dir: Path | None) -> None:
    from growthengine.bench import segment_timers as bench
    from growthengine.bench.ingest import BenchError

    if timers < 1:
        raise CliError("--timers must be at least 1")
    size = bench.InstantSize(timers=timers, flows=flows, cold=cold)
    listening = "the flows and ads audiences listening" if flows else "no flow listening"
    listening += ", states read from the database" if cold else ", states in memory"
    console.print(f"[bold]growth bench segments --instant[/]: {timers:,} segment timers due at one instant, "
                  f"{listening} (the target is stated for {bench.TARGET_INSTANT_TIMERS:,}); the collector set up as in "
                  f"growth worker; {machine_summary()}; {_load()}")
    with _progress() as progress:
        stage = _RichStages(progress).stage
        try:
            r = _in_dir(db_dir, lambda d: bench.run_instant_bench(size, d, stage))
        except BenchError as exc:
            raise CliError(f"benchmark failed: {exc}") from None
    assert isinstance(r, bench.InstantTimers)
    table = Table(title=f"{r.pending:,} cart_abandoners timers due at one instant (SQLite, {listening})")
    for column in ("measure", "value", "target", "result", "note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    own = r.own_rate if flows else r.rate
    table.add_row("segment timers fired, own share", f"{own:,.0f} /s", f">= {bench.TARGET_INSTANT_RATE:,.0f} /s",
                  _verdict(own >= bench.TARGET_INSTANT_RATE),
                  f"{r.pending:,} timers, {r.entered:,} entries stored in {r.seconds - r.listeners_s:.2f} s; "
                  f"CPU {r.cpu_s / r.seconds:.0%} of one core")
    if flows:
        table.add_row("with the flows' share", f"{r.rate:,.0f} /s", "", "",
                      f"{r.seconds:.2f} s, of which the flows {r.listeners_s:.2f} s (listeners, deferred "
                      "enrolments, rounds after each commit)")
    out.print(table)
    out.print(f"segment timers at one instant: {own:,.0f} /s own share ({r.pending:,} timers, {r.entered:,} entries, "
              f"{r.seconds - r.listeners_s:.2f} s; target >= {bench.TARGET_INSTANT_RATE:,.0f} /s)", soft_wrap=True)
    out.print(f"measured: Engine.advance to the instant, from the clock passing it to the last transition committed; "
              f"setup (ingesting the carts) {r.setup_s:.1f} s, not counted; after the run: {_load()}")

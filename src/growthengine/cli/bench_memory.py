"""``growth bench segments --memory``: peak resident memory with every one of N users holding segment state
(figures in benchmarks/README.md, "Segment stage, fourth pass")."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from growthengine.cli.bench import _in_dir, _load, _progress, _RichStages, _verdict, machine_summary
from growthengine.cli.options import CliError, console, out


def memory_bench(users: int, events: int, batch: int, db_dir: Path | None) -> None:
    from growthengine.bench import segment_memory as bench

    if users < 1 or events < users or not 1 <= batch <= 10_000:
        raise CliError("--events must be at least --users (every user has an event); --batch 1-10,000")
    size = bench.MemorySize(users=users, events=events, batch=batch)
    console.print(f"[bold]growth bench segments --memory[/]: {users:,} users, every one with events, {events:,} "
                  f"events ({batch} a batch; the target is stated for {bench.TARGET_USERS:,} users); "
                  f"{machine_summary()}; {_load()}")
    with _progress() as progress:
        stage = _RichStages(progress).stage
        r = _in_dir(db_dir, lambda d: bench.run_memory_bench(size, d, stage))
    assert isinstance(r, bench.SegmentMemory)
    table = Table(title=f"Peak resident memory, {r.users_with_state:,} users with segment state (SQLite)")
    for column in ("measure", "value", "target", "result", "note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    table.add_row("peak resident memory", f"{r.peak_rss_mb:,.0f} MB", f"<= {bench.TARGET_RSS_MB:,.0f} MB",
                  _verdict(r.peak_rss_mb <= bench.TARGET_RSS_MB),
                  f"VmHWM of this process; at the end {r.rss_mb:,.0f} MB resident: {r.anon_mb:,.0f} MB "
                  f"anonymous, {r.file_mb:,.0f} MB of mapped file (SQLite's mmap)")
    table.add_row("states held in memory", f"{r.held:,}", "", "",
                  f"the cache keeps {r.capacity:,}; found in memory {r.hit_share:.0%} of the time")
    table.add_row("users with stored state", f"{r.users_with_state:,}", "", "",
                  f"{r.events:,} events ingested in {r.seconds:,.0f} s ({r.events / r.seconds:,.0f} ev/s)")
    out.print(table)
    out.print(f"segment state memory: peak RSS {r.peak_rss_mb:,.0f} MB with {r.users_with_state:,} users' state "
              f"stored, {r.held:,} held (target <= {bench.TARGET_RSS_MB:,.0f} MB at "
              f"{bench.TARGET_USERS:,}); after the run: {_load()}", soft_wrap=True)

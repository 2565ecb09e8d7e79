"""``growth bench ingest``: the ingestion benchmark (events/s over HTTP, in process, and a bare SQLite append)."""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from growthengine.cli.options import CliError, console, out

app = typer.Typer(help="Performance benchmarks.", no_args_is_help=True)


class _RichStages:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def stage(self, name: str, total: int) -> Callable[[int], None]:
        task: TaskID = self.progress.add_task(name, total=total)
        return lambda n: self.progress.advance(task, n)


def machine_summary() -> str:
    """nproc, CPU model, memory and Python version, as the benchmark's record wants them."""
    model = platform.processor() or "unknown CPU"
    memory = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU ({model}){memory}, Python {platform.python_version()}"


@app.command("ingest")
def ingest(
    events: Annotated[int, typer.Option("--events", help="events per measurement")] = 200_000,
    db_dir: Annotated[Path | None, typer.Option("--db-dir", help="where the SQLite files go (kept); "
                                                "default: a temporary directory, removed afterwards")] = None,
    users: Annotated[int, typer.Option(help="distinct users in the workload")] = 100_000,
    seed: Annotated[int, typer.Option(help="random seed of the workload")] = 7,
    connections: Annotated[int, typer.Option(help="concurrent keep-alive connections of the HTTP client")] = 8,
    http: Annotated[bool, typer.Option("--http/--no-http", help="include the HTTP measurement")] = True,
) -> None:
    """Events/s stored over HTTP (POST /v1/batch) and in process, against a bare SQLite append of the same rows."""
    from growthengine.bench.ingest import (
        BATCH_SIZE,
        TARGET_HTTP_RATE,
        TARGET_IN_PROCESS_RATIO,
        BenchError,
        run_ingest_bench,
    )
    from growthengine.bench.workload import make_workload

    if events < BATCH_SIZE:
        raise CliError(f"--events must be at least {BATCH_SIZE}")
    if users < 1 or connections < 1:
        raise CliError("--users and --connections must be at least 1")
    console.print(f"[bold]growth bench ingest[/]: {events:,} events from {users:,} users, {BATCH_SIZE} a batch; "
                  f"{machine_summary()}; {_load()}")
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        stages = _RichStages(progress)
        workload = make_workload(events, users=users, seed=seed, progress=stages.stage("workload", events))
        try:
            if db_dir is not None:
                report = run_ingest_bench(workload, db_dir, connections=connections, http=http, progress=stages)
            else:
                with tempfile.TemporaryDirectory(prefix="growth-bench-") as tmp:
                    report = run_ingest_bench(workload, Path(tmp), connections=connections, http=http,
                                              progress=stages)
        except BenchError as exc:
            raise CliError(str(exc)) from None

    table = Table(title=f"Ingestion: {report.events:,} events, {BATCH_SIZE} a batch")
    for column in ("path", "events", "seconds", "events/s", "vs bare", "target", "result"):
        table.add_column(column, justify="left" if column in ("path", "target") else "right")
    bare, inproc, over_http = report.bare, report.in_process, report.http
    table.add_row(bare.name, f"{bare.events:,}", f"{bare.seconds:.2f}", f"{bare.rate:,.0f}", "1.00", "baseline", "")
    table.add_row(inproc.name, f"{inproc.events:,}", f"{inproc.seconds:.2f}", f"{inproc.rate:,.0f}",
                  f"{report.in_process_ratio:.2f}", f">= {TARGET_IN_PROCESS_RATIO:.2f} x bare",
                  _verdict(report.in_process_ok))
    if over_http is not None:
        table.add_row(over_http.name, f"{over_http.events:,}", f"{over_http.seconds:.2f}", f"{over_http.rate:,.0f}",
                      f"{report.http_ratio or 0:.2f}", f">= {TARGET_HTTP_RATE:,.0f} events/s",
                      _verdict(bool(report.http_ok)))
    out.print(table)
    out.print(f"after the run: {_load()}")

    listeners: dict[str, float] = inproc.details.get("listener_s", {})
    if inproc.seconds > 0:
        in_listeners = sum(listeners.values())
        shares = ", ".join(f"{name} {s / inproc.seconds:.0%}" for name, s in listeners.items()) or "none"
        core = inproc.events / (inproc.seconds - in_listeners) if inproc.seconds > in_listeners else 0.0
        out.print(f"in process: {in_listeners / inproc.seconds:.0%} of the time in ingest listeners ({shares}); "
                  f"the rest alone would be ~{core:,.0f} events/s ({core / bare.rate if bare.rate else 0:.2f} x bare); "
                  f"CPU {inproc.cpu_s / inproc.seconds:.0%} of one core")
    if over_http is not None:
        d = over_http.details
        out.print(f"HTTP: {d['connections']} connections, {d['requests']:,} requests, latency p50 "
                  f"{d['latency_p50_ms']:.1f} ms, p99 {d['latency_p99_ms']:.1f} ms; server CPU "
                  f"{d['server_cpu_share']:.0%} of one core, load-generator CPU {d['client_cpu_share']:.0%} "
                  "of one core")


def _load() -> str:
    """The machine's load average: other work on the machine skews every figure."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def _verdict(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]MISS[/]"


@app.command("quality")
def quality(
    scale: Annotated[float, typer.Option(help="multiply every count (users, runs, campaigns)")] = 1.0,
    seed: Annotated[int, typer.Option(help="random seed of the simulated worlds")] = 20260105,
) -> None:
    """Send time, experiments and uplift intervals measured against simulated ground truth (PASS/MISS)."""
    from growthengine.bench.quality import QualitySize, quality_table, run_quality_bench, scaled

    if scale <= 0:
        raise CliError("--scale must be positive")
    size = scaled(QualitySize(seed=seed), scale)
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        report = run_quality_bench(size, _RichStages(progress).stage)
    out.print(quality_table(report))
    out.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()) + f"; {machine_summary()}")


@app.command("dashboard")
def dashboard(
    messages: Annotated[int, typer.Option(help="rows of the send ledger to seed")] = 2_000_000,
    runs: Annotated[int, typer.Option(help="flow runs to seed (5 % active)")] = 1_000_000,
    members: Annotated[int, typer.Option(help="segment memberships to seed")] = 250_000,
    repeat: Annotated[int, typer.Option(help="timed fetches of each page (after two warm-ups)")] = 20,
    db_dir: Annotated[Path | None, typer.Option("--db-dir", help="where the SQLite file goes (kept); "
                                                "default: a temporary directory, removed afterwards")] = None,
) -> None:
    """Dashboard pages and GET /v1/kpis latency on a ledger and rollups the size of 1M users / 10M events."""
    from growthengine.bench.dashboard import TARGET_MS, BenchError, Size, run_dashboard_bench

    size = Size(messages=messages, runs=runs, members=members, repeat=max(1, repeat))
    console.print(f"[bold]growth bench dashboard[/]: {messages:,} messages, {runs:,} runs, {members:,} members, "
                  f"365 days of rollups; {machine_summary()}")
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        stage = _RichStages(progress).stage
        try:
            if db_dir is not None:
                db_dir.mkdir(parents=True, exist_ok=True)
                timings = run_dashboard_bench(db_dir, size, stage)
            else:
                with tempfile.TemporaryDirectory(prefix="growth-bench-") as tmp:
                    timings = run_dashboard_bench(Path(tmp), size, stage)
        except BenchError as exc:
            raise CliError(str(exc)) from None
    table = Table(title=f"Dashboard over HTTP, {size.repeat} fetches a page")
    for column in ("page", "p50 ms", "p95 ms", "max ms", "target", "result"):
        table.add_column(column, justify="left" if column in ("page", "target") else "right")
    for t in timings:
        table.add_row(t.path, f"{t.p50:.1f}", f"{t.p95:.1f}", f"{max(t.samples_ms):.1f}", f"p95 < {TARGET_MS:.0f} ms",
                      _verdict(t.ok))
    out.print(table)

"""``growth bench ingest``: the ingestion benchmark (events/s over HTTP, in process, and a bare SQLite append)."""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from growthengine.cli.options import CliError, console, out

if TYPE_CHECKING:
    from growthengine.bench.ingest import IngestBench, Measurement

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
    core: Annotated[bool, typer.Option("--core/--no-core", help="also measure in process with the ingest "
                                       "listeners taken out (diagnostic)")] = True,
) -> None:
    """Events/s stored over HTTP (POST /v1/batch) and in process, against a bare SQLite append of the same rows."""
    from growthengine.bench.ingest import BATCH_SIZE, BenchError, run_ingest_bench
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
            with tempfile.TemporaryDirectory(prefix="growth-bench-") as tmp:
                report = run_ingest_bench(workload, db_dir or Path(tmp), connections=connections, http=http,
                                          core=core, progress=stages)
        except BenchError as exc:
            raise CliError(str(exc)) from None
    out.print(_ingest_table(report))
    out.print(f"after the run: {_load()}")
    for line in _ingest_notes(report):
        out.print(line)


def _ingest_table(report: IngestBench) -> Table:
    from growthengine.bench.ingest import BATCH_SIZE, TARGET_HTTP_RATE, TARGET_IN_PROCESS_RATIO

    table = Table(title=f"Ingestion: {report.events:,} events, {BATCH_SIZE} a batch")
    for column in ("path", "events", "seconds", "events/s", "vs bare", "target", "result"):
        table.add_column(column, justify="left" if column in ("path", "target") else "right")

    def row(m: Measurement, target: str = "", verdict: str = "") -> None:
        ratio = m.rate / report.bare.rate if report.bare.rate else 0.0
        table.add_row(m.name, f"{m.events:,}", f"{m.seconds:.2f}", f"{m.rate:,.0f}", f"{ratio:.2f}", target, verdict)

    row(report.bare, "baseline")
    row(report.in_process, f">= {TARGET_IN_PROCESS_RATIO:.2f} x bare", _verdict(report.in_process_ok))
    if report.http is not None:
        row(report.http, f">= {TARGET_HTTP_RATE:,.0f} events/s", _verdict(bool(report.http_ok)))
    if report.core is not None:
        row(report.core, "(diagnostic)")
    return table


def _ingest_notes(report: IngestBench) -> list[str]:
    notes: list[str] = []
    inproc = report.in_process
    listeners: dict[str, float] = inproc.details.get("listener_s", {})
    if inproc.seconds > 0:
        shares = ", ".join(f"{name} {s / inproc.seconds:.0%}" for name, s in listeners.items()) or "none"
        notes.append(f"in process: {sum(listeners.values()) / inproc.seconds:.0%} of the time inside the ingest "
                     f"listeners ({shares}), not counting the commit of what they wrote; CPU "
                     f"{inproc.cpu_s / inproc.seconds:.0%} of one core")
    if report.http is not None:
        d = report.http.details
        notes.append(f"HTTP: {d['connections']} connections, {d['requests']:,} requests, latency p50 "
                     f"{d['latency_p50_ms']:.1f} ms, p99 {d['latency_p99_ms']:.1f} ms; server CPU "
                     f"{d['server_cpu_share']:.0%} of one core, load-generator CPU {d['client_cpu_share']:.0%} "
                     "of one core")
    return notes


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


def _in_dir(db_dir: Path | None, run: Callable[[Path], object]) -> object:
    """Run in ``db_dir`` (kept) or in a temporary directory removed afterwards."""
    if db_dir is not None:
        return run(db_dir)
    with tempfile.TemporaryDirectory(prefix="growth-bench-") as tmp:
        return run(Path(tmp))


def _progress() -> Progress:
    return Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


_DB_DIR = typer.Option("--db-dir", help="where the SQLite files go (kept); default: a temporary directory")


@app.command("segments")
def segments(
    users: Annotated[int, typer.Option(help="users of the workload (the target is stated for 1,000,000)")] = 100_000,
    events: Annotated[int, typer.Option(help="events ingested (the target is stated for 10,000,000)")] = 1_000_000,
    batch: Annotated[int, typer.Option(help="calls per Engine.ingest batch (100-1000)")] = 500,
    timers: Annotated[int, typer.Option(help="pending cart-abandoner timers to fire")] = 20_000,
    paced_seconds: Annotated[float, typer.Option(help="seconds of paced 5,000 events/s arrivals")] = 5.0,
    db_dir: Annotated[Path | None, _DB_DIR] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="only the full rebuild of the five defaults: Python, "
                                          "SQL (SQLite, and PostgreSQL with --pg) and DuckDB on the same rows "
                                          "(needs the dev extras)")] = False,
    pg: Annotated[str | None, typer.Option("--pg", help="with --rebuild: also on this PostgreSQL database "
                                           "(migrated here; it must hold no events)")] = None,
    no_python: Annotated[bool, typer.Option("--no-python", help="with --rebuild: skip the Python rebuild (slow at "
                                            "full size); the SQL members are checked against DuckDB's")] = False,
    instant: Annotated[bool, typer.Option("--instant", help="only --timers segment timers due at one instant, the "
                                          "segment stage's own share (no flow listening)")] = False,
    with_flows: Annotated[bool, typer.Option("--flows", help="with --instant: the flows listen too (their share "
                                             "reported apart)")] = False,
    cold: Annotated[bool, typer.Option("--cold", help="with --instant: no segment state in memory (each read from "
                                       "the database)")] = False,
    memory: Annotated[bool, typer.Option("--memory", help="only the peak resident memory with every one of --users "
                                         "holding segment state (--events at least --users)")] = False,
) -> None:
    """Segment engine: ingestion vs bare append, event-to-transition p99, timers/s, rebuild time, peak memory."""
    from growthengine.bench import segments as bench

    if rebuild:
        from growthengine.cli.bench_rebuild import rebuild_bench

        rebuild_bench(users, events, db_dir, pg, python=not no_python)
        return
    if memory:
        from growthengine.cli.bench_memory import memory_bench

        memory_bench(users, events, batch, db_dir)
        return
    if instant or with_flows or cold:
        from growthengine.cli.bench_timers import instant_bench

        instant_bench(timers, with_flows, cold, db_dir)
        return
    if pg is not None or no_python:
        raise CliError("--pg and --no-python go with --rebuild")
    if events < batch or users < 1 or timers < 1 or not 1 <= batch <= 10_000 or paced_seconds <= 0:
        raise CliError("--events must be at least --batch (1-10,000); --users and --timers at least 1")
    size = bench.SegmentsSize(users=users, events=events, batch=batch, timers=timers, paced_seconds=paced_seconds)
    scale = bench.TARGET_EVENTS / events
    console.print(f"[bold]growth bench segments[/]: {users:,} users, {events:,} events ({batch} a batch), "
                  f"{timers:,} timers; the targets are stated for {bench.TARGET_USERS:,} users and "
                  f"{bench.TARGET_EVENTS:,} events ({scale:,.0f} x this size); the collector set up as in growth "
                  f"worker; {machine_summary()}; {_load()}")
    with _progress() as progress:
        stage = _RichStages(progress).stage
        r = _in_dir(db_dir, lambda d: bench.run_segments_bench(size, d, stage))
    assert isinstance(r, bench.SegmentsBench)
    table = Table(title=f"Segments: {r.counts['events']:,} events from {r.counts['profiles']:,} profiles "
                        f"(targets for {bench.TARGET_EVENTS:,} / {bench.TARGET_USERS:,})")
    for column in ("measure", "value", "target", "result", "ratio / note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    table.add_row("bare append (baseline)", f"{r.bare.rate:,.0f} ev/s", "", "",
                  f"{r.bare.events:,} rows, {batch} a transaction")
    table.add_row("sustained ingestion", f"{r.ingest.rate:,.0f} ev/s", f">= {bench.TARGET_INGEST_RATE:,.0f} ev/s",
                  _verdict(r.ingest.rate >= bench.TARGET_INGEST_RATE),
                  f"{r.ratio:.3f} x bare; {r.ingest.rate / bench.TARGET_INGEST_RATE:.2f} x target")
    table.add_row("segment stage throughput", f"{r.stage_rate:,.0f} ev/s", f">= {bench.TARGET_STAGE_RATE:,.0f} ev/s",
                  _verdict(r.stage_rate >= bench.TARGET_STAGE_RATE),
                  f"five defaults live, flows fed; state found in memory "
                  f"{r.ingest.details['state_hit_share']:.0%} of the time")
    table.add_row("event-to-transition p99", f"{r.p99_ms:,.1f} ms", f"< {bench.TARGET_P99_MS:.0f} ms",
                  _verdict(r.p99_ms < bench.TARGET_P99_MS),
                  f"p50 {r.p50_ms:,.1f} ms; {r.achieved_rate:,.0f} ev/s achieved of {size.paced_rate:,.0f}")
    seg_timers = int(r.timers.details["segment_timers"])
    table.add_row("timers fired", f"{r.timers.rate:,.0f} /s", f">= {bench.TARGET_TIMER_RATE:,.0f} /s",
                  _verdict(r.timers.rate >= bench.TARGET_TIMER_RATE),
                  f"{r.timers.events:,} fired ({seg_timers:,} segment); segment engine alone "
                  f"~{r.segment_timer_rate:,.0f} /s")
    table.add_row("rebuild of all five", f"{r.rebuild.seconds:,.1f} s", f"< {bench.TARGET_REBUILD_S:.0f} s",
                  _verdict(r.rebuild.seconds < bench.TARGET_REBUILD_S),
                  f"{r.rebuild.events:,} events, {r.rebuild.rate:,.0f} ev/s; x{scale:,.0f} size ~ "
                  f"{r.rebuild.seconds * scale:,.0f} s")
    table.add_row("peak resident memory", f"{r.rss_mb:,.0f} MB", f"< {bench.TARGET_RSS_MB:,.0f} MB",
                  _verdict(r.rss_mb < bench.TARGET_RSS_MB), "ru_maxrss of this process")
    out.print(table)
    listeners: dict[str, float] = r.ingest.details["listener_s"]
    shares = ", ".join(f"{k} {v / r.ingest.seconds:.0%}" for k, v in listeners.items() if r.ingest.seconds)
    out.print(f"ingestion time in listeners: {shares}; CPU {r.ingest.cpu_s / r.ingest.seconds:.0%} of one core; "
              f"timers: segment handler {r.timers.details['segment_handler_s']:.1f} s of {r.timers.seconds:.1f} s, "
              f"of which flows {r.timers.details['listeners_s']:.1f} s; after the run: {_load()}")
    out.print("members: " + ", ".join(f"{k[8:]} {v:,}" for k, v in r.counts.items() if k.startswith("members ")))


@app.command("flows")
def flows(
    favoriters: Annotated[int, typer.Option(help="users who favorited the listing (target: 200,000)")] = 50_000,
    waiting: Annotated[int, typer.Option(help="seller-coach runs left waiting (target: 1,000,000)")] = 100_000,
    idle_seconds: Annotated[float, typer.Option(help="seconds the idle worker loop is watched")] = 5.0,
    carts: Annotated[int, typer.Option(help="cart timers due over one minute (target: 100,000)")] = 20_000,
    only: Annotated[str | None, typer.Option(help="run one measurement only: price-drop, carts or waiting")] = None,
    db_dir: Annotated[Path | None, _DB_DIR] = None,
) -> None:
    """Flow engine: a price drop fanned out to every favoriter (users/s), cart timers due milliseconds apart
    (users/s), and the CPU that waiting runs cost."""
    from growthengine.bench import flows as bench

    if favoriters < 1 or waiting < 1 or carts < 1 or idle_seconds <= 0:
        raise CliError("--favoriters, --waiting and --carts must be at least 1, --idle-seconds positive")
    if only is not None and only not in bench.PARTS:
        raise CliError(f"--only takes one of: {', '.join(bench.PARTS)}")
    size = bench.FlowsSize(favoriters=favoriters, waiting=waiting, idle_seconds=idle_seconds, carts=carts)
    console.print(f"[bold]growth bench flows[/]: {favoriters:,} favoriters (target stated for "
                  f"{bench.TARGET_FAVORITERS:,}), {waiting:,} waiting runs (target stated for "
                  f"{bench.TARGET_WAITING:,}); {machine_summary()}; {_load()}")
    with _progress() as progress:
        stage = _RichStages(progress).stage
        r = _in_dir(db_dir, lambda d: bench.run_flows_bench(size, d, stage, only))
    assert isinstance(r, bench.FlowsBench)
    table = Table(title="Flows")
    for column in ("measure", "value", "target", "result", "ratio / note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    if only in (None, "price-drop"):
        table.add_row("price drop fan-out", f"{r.fanout_rate:,.0f} users/s",
                      f">= {bench.TARGET_FANOUT_RATE:,.0f} users/s",
                      _verdict(r.fanout_rate >= bench.TARGET_FANOUT_RATE),
                      f"{r.fanout_users:,} users in {r.fanout_seconds:.1f} s; {r.sent:,} sent, {r.outbox:,} in the "
                      f"outbox; {r.fanout_rate / bench.TARGET_FANOUT_RATE:.2f} x target")
    if only in (None, "carts"):
        table.add_row("cart timers due ms apart", f"{r.cart_rate:,.0f} users/s",
                      f">= {bench.TARGET_CART_RATE:,.0f} users/s", _verdict(r.cart_rate >= bench.TARGET_CART_RATE),
                      f"{r.cart_users:,} runs entered in {r.cart_seconds:.1f} s, {r.cart_pushed:,} pushes in the "
                      f"outbox; CPU {r.cart_cpu_s / r.cart_seconds if r.cart_seconds else 0:.0%} of one core; "
                      f"{r.cart_rate / bench.TARGET_CART_RATE:.2f} x target (stated for {bench.TARGET_CARTS:,})")
    poll = sorted(r.poll_ms)
    idle_ok = r.idle_cpu_share < bench.TARGET_IDLE_CPU_SHARE
    if only in (None, "waiting"):
        table.add_row("idle worker CPU", f"{r.idle_cpu_share:.2%} of a core",
                      f"< {bench.TARGET_IDLE_CPU_SHARE:.0%} of a core", _verdict(idle_ok),
                      f"{r.waiting_runs:,} runs waiting; {r.idle_cpu_s * 1000:.0f} ms CPU in {r.idle_seconds:.1f} s "
                      f"(the loop's thread {r.loop_cpu_s * 1000:.0f} ms), "
                      f"{r.polls} polls, median {poll[len(poll) // 2] if poll else 0:.2f} ms; "
                      f"{r.fired_while_idle} timers fired")
    out.print(table)
    out.print(f"fan-out CPU {r.fanout_cpu_s / r.fanout_seconds if r.fanout_seconds else 0:.0%} of one core "
              f"({r.fanout_cpu_s:.2f} s), cart timers CPU {r.cart_cpu_s:.2f} s; after the run: {_load()}")


@app.command("gate")
def gate(
    messages: Annotated[int, typer.Option(help="queued marketing messages to decide (target: 1,000,000)")] = 200_000,
    flush_messages: Annotated[int, typer.Option(help="messages through the whole dispatcher flush")] = 50_000,
    batch: Annotated[int, typer.Option(help="messages per decide_many call and transaction")] = 2_000,
    db_dir: Annotated[Path | None, _DB_DIR] = None,
) -> None:
    """Send gate: decisions/s for queued marketing messages, and the full dispatcher flush rate."""
    from growthengine.bench import gate as bench

    if messages < 1 or flush_messages < 0 or batch < 1:
        raise CliError("--messages and --batch must be at least 1")
    size = bench.GateSize(messages=messages, flush_messages=flush_messages, batch=batch)
    console.print(f"[bold]growth bench gate[/]: {messages:,} queued messages (target stated for "
                  f"{bench.TARGET_MESSAGES:,}), {batch:,} a batch; {machine_summary()}; {_load()}")
    with _progress() as progress:
        stage = _RichStages(progress).stage
        r = _in_dir(db_dir, lambda d: bench.run_gate_bench(size, d, stage))
    assert isinstance(r, bench.GateBench)
    table = Table(title=f"Send gate: {r.decisions:,} marketing messages")
    for column in ("measure", "value", "target", "result", "ratio / note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    table.add_row("decide_many (prefetched history)", f"{r.rate:,.0f} decisions/s",
                  f">= {bench.TARGET_DECISION_RATE:,.0f} /s", _verdict(r.rate >= bench.TARGET_DECISION_RATE),
                  f"{r.seconds:.1f} s; {r.rate / bench.TARGET_DECISION_RATE:.2f} x target; "
                  f"CPU {r.cpu_s / r.seconds if r.seconds else 0:.0%} of one core "
                  f"({r.decisions / r.cpu_s if r.cpu_s else 0:,.0f} per CPU second)")
    prefetch_rate = r.decisions / r.prefetch_seconds if r.prefetch_seconds else 0.0
    table.add_row("load_history (the prefetch)", f"{prefetch_rate:,.0f} messages/s", "", "",
                  f"{r.prefetch_seconds:.1f} s: the cap lock, one query per cap, the channel scores")
    table.add_row("Dispatcher.flush (gate + ledger + outbox)", f"{r.flush_rate:,.0f} messages/s",
                  f">= {bench.TARGET_FLUSH_RATE:,.0f} /s", _verdict(r.flush_rate >= bench.TARGET_FLUSH_RATE),
                  f"{r.flushed:,} messages in {r.flush_seconds:.2f} s; CPU {r.flush_cpu_s:.2f} s "
                  f"({r.flushed / r.flush_cpu_s if r.flush_cpu_s else 0:,.0f} per CPU second); "
                  f"{r.flush_rate / r.rate if r.rate else 0:.2f} x the gate alone")
    out.print(table)
    out.print("decisions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r.actions.items())))
    out.print("flushed: " + ", ".join(f"{k} {v:,}" for k, v in sorted(r.statuses.items())) + f"; after: {_load()}")

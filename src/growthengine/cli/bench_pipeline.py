"""``growth bench pipeline``: ingestion acknowledged and end to end on the real clock, reads under write load,
PostgreSQL against a bare append, and one worker against two (figures in benchmarks/README.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from growthengine.cli.bench import app, machine_summary
from growthengine.cli.options import CliError, console


@app.command("pipeline")
def pipeline(
    events: Annotated[int, typer.Option("--events", help="events in the burst")] = 100_000,
    users: Annotated[int, typer.Option(help="distinct users in the workload")] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed of the workload")] = 7,
    connections: Annotated[int, typer.Option(help="concurrent clients posting 100-call batches")] = 4,
    read_load: Annotated[int, typer.Option("--read-load", help="clients of the second SQLite burst during which "
                                           "GET /v1/users/{id} is timed (0: no second burst)")] = 16,
    pg: Annotated[str | None, typer.Option("--pg", help="an empty PostgreSQL server's URL (postgresql://...); the "
                                           "bench creates its own databases there")] = None,
    db_dir: Annotated[Path | None, typer.Option("--db-dir", help="where the files go (default: a temporary "
                                                "directory)")] = None,
) -> None:
    """The pipeline on the real clock: acknowledged vs end to end vs a bare append; reads under write load."""
    from growthengine.bench.ingest import BenchError
    from growthengine.bench.pipeline import postgres_bench, reads_under_load, sqlite_bench, summary
    from growthengine.bench.scale_out import scale_out
    from growthengine.bench.workload import live_workload

    if events < 100:
        raise CliError("--events must be at least 100")
    console.print(f"[bold]growth bench pipeline[/]: {events:,} events from {users:,} users, 100 a request, "
                  f"{connections} clients; {machine_summary()}")
    results = []
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("workload", total=events)
        workload = live_workload(events, users=users, seed=seed, progress=lambda n: progress.advance(task, n))
        try:
            with tempfile.TemporaryDirectory(prefix="growth-bench-pipeline-") as tmp:
                work = db_dir or Path(tmp)
                work.mkdir(parents=True, exist_ok=True)
                task = progress.add_task("sqlite burst", total=events)
                results.append(sqlite_bench(workload, work, connections=connections,
                                            progress=lambda n: progress.advance(task, n)))
                loaded = None
                if read_load > 0:
                    task = progress.add_task(f"{read_load} clients", total=events)
                    loaded = reads_under_load(workload, work, connections=read_load,
                                              progress=lambda n: progress.advance(task, n))
                scale = None
                if pg is not None:
                    urls = _pg_databases(pg, ["bench_burst", "bench_one", "bench_two"])
                    task = progress.add_task("postgres burst", total=events)
                    results.append(postgres_bench(workload, urls[0], work, connections=connections,
                                                  progress=lambda n: progress.advance(task, n)))
                    scale = scale_out(workload, (urls[1], urls[2]), work)
        except BenchError as exc:
            raise CliError(f"benchmark failed: {exc}") from None
    table = Table(title="growth bench pipeline")
    for column in ("backend", "acknowledged/s", "bare append/s", "ratio", "end to end/s", "ack p50/p99 ms",
                   "GET user p50/p99 ms"):
        table.add_column(column)
    for bench in results:
        s = summary(bench)
        table.add_row(s["backend"], f"{s['acknowledged_per_s']:,}", f"{s['bare_per_s']:,}", f"{s['ratio_to_bare']:.2f}",
                      f"{s['end_to_end_per_s']:,}", f"{s['ack_p50_ms']} / {s['ack_p99_ms']}",
                      f"{s['read_p50_ms']} / {s['read_p99_ms']} ({s['reads']} reads)")
    console.print(table)
    if loaded is not None:
        console.print(f"SQLite, {loaded.connections} clients: acknowledged {loaded.acknowledged.rate:,.0f} events/s; "
                      f"GET /v1/users/{{id}} p50 {loaded.percentile(0.5):.1f} ms, p99 {loaded.percentile(0.99):.1f} ms "
                      f"({len(loaded.reads_ms)} reads)")
    if pg is None:
        console.print("PostgreSQL not measured: pass --pg postgresql://user@host/ (an empty server the bench may "
                      "create databases on)")
    elif scale is not None:
        one, two = scale[1], scale[2]
        console.print(f"backlog of {events:,} events, from the first partition taken: 1 worker {one.working_s:.1f}s, "
                      f"2 workers {two.working_s:.1f}s ({one.working_s / two.working_s:.2f} x); with the processes' "
                      f"start: {one.total_s:.1f}s, {two.total_s:.1f}s ({one.total_s / two.total_s:.2f} x)")


def _pg_databases(url: str, names: list[str]) -> list[str]:
    """Fresh databases on the server of ``url`` (dropped first if an earlier run left them)."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(url)
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    return [base.set(drivername="postgresql", database=n).render_as_string(hide_password=False) for n in names]


@app.command("freshness")
def freshness(
    rate: Annotated[float, typer.Option("--rate", help="events/s offered (100-call batches on a schedule)")] = 5_000,
    seconds: Annotated[float, typer.Option("--seconds", help="how long the stream runs")] = 15.0,
    users: Annotated[int, typer.Option(help="distinct users in the workload")] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed of the workload")] = 7,
    connections: Annotated[int, typer.Option(help="concurrent clients")] = 4,
    slow_provider_s: Annotated[float, typer.Option("--slow-provider-s", help="the slow push provider's seconds a "
                                                   "call (the second run)")] = 2.0,
    pg: Annotated[str | None, typer.Option("--pg", help="an empty PostgreSQL server's URL; the bench creates its own "
                                           "databases there (default: SQLite)")] = None,
    workers: Annotated[int, typer.Option("--workers", help="with --pg: growth serve --api-only and this many growth "
                                         "worker processes (0: growth serve with its embedded worker)")] = 0,
    rounds: Annotated[int, typer.Option("--rounds", help="runs with each provider, alternated fast, slow, slow, "
                                        "fast, ...; the comparison pools each provider's runs")] = 2,
) -> None:
    """A paced stream on the real clock: each probe's segment change visible over the API how soon after its
    answer (p50/p99/max), and ingestion latency with a fast and with a slow push provider sending meanwhile."""
    from growthengine.bench.freshness import FreshnessRun, freshness_run, pooled, provider_order, summary
    from growthengine.bench.ingest import BenchError
    from growthengine.bench.workload import live_workload

    if rate < 100 or seconds <= 0:
        raise CliError("--rate must be at least 100 events/s and --seconds positive")
    if rounds < 1:
        raise CliError("--rounds must be at least 1")
    if workers < 0 or (workers and not pg):
        raise CliError("--workers needs --pg (on SQLite one worker runs, the one inside growth serve) and is >= 0")
    events = int(rate * seconds)
    console.print(f"[bold]growth bench freshness[/]: {rate:,.0f} events/s for {seconds:g}s on "
                  f"{'PostgreSQL' if pg else 'SQLite'}, {connections} clients, "
                  f"{f'an API and {workers} workers' if workers else 'growth serve'}; {machine_summary()}")
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("workload", total=events)
        workload = live_workload(events, users=users, seed=seed, progress=lambda n: progress.advance(task, n))
    runs: list[FreshnessRun] = []
    order = provider_order(rounds)
    try:
        with tempfile.TemporaryDirectory(prefix="growth-bench-freshness-") as tmp:
            for n, is_slow in enumerate(order):
                label = f"slow {slow_provider_s:g}s" if is_slow else "fast"
                label += f" #{order[:n + 1].count(is_slow)}" if rounds > 1 else ""
                url = _pg_databases(pg, [f"bench_fresh_{len(runs)}"])[0] if pg else None
                console.print(f"run: {label} ...")
                runs.append(freshness_run(workload, Path(tmp), label.replace(" ", "-"), rate=rate, seconds=seconds,
                                          connections=connections, provider_delay_s=slow_provider_s if is_slow else 0.0,
                                          db_url=url, workers=workers))
    except BenchError as exc:
        raise CliError(f"benchmark failed: {exc}") from None
    pools = {which: pooled([r for r, s in zip(runs, order, strict=True) if s == which],
                           f"{'slow' if which else 'fast'}, {rounds} runs pooled") for which in (False, True)}
    table = Table(title="freshness (ms from a probe's answer to its segment change over the API)")
    for column in ("provider", "offered/s", "achieved/s", "ingest p50/p99 ms", "fresh p50/p99/max ms", "probes",
                   "unseen", "pushes in run"):
        table.add_column(column)
    for run in [*runs, *(pools.values() if rounds > 1 else ())]:
        row = summary(run)
        table.add_row(row["run"], f"{row['offered_per_s']:,}", f"{row['achieved_per_s']:,}",
                      f"{row['ingest_p50_ms']} / {row['ingest_p99_ms']}",
                      f"{row['fresh_p50_ms']} / {row['fresh_p99_ms']} / {row['fresh_max_ms']}", str(row["probes"]),
                      str(row["unseen"]), f"{row['pushes_during_run']} of {row['provider_calls']}")
    console.print(table)
    fast, slow = summary(pools[False]), summary(pools[True])
    change = slow["ingest_p99_ms"] / fast["ingest_p99_ms"] - 1 if fast["ingest_p99_ms"] else float("nan")
    console.print(f"ingestion p99 with the slow provider: {change:+.0%} against the fast one "
                  f"({'pooled over ' + str(rounds) + ' runs each; ' if rounds > 1 else ''}target within 20 %: "
                  f"{'PASS' if abs(change) <= 0.2 else 'MISS'}); freshness p99 target 1,000 ms: "
                  f"{'PASS' if fast['fresh_p99_ms'] <= 1000 and not fast['unseen'] else 'MISS'}")

"""``growth segments list|show|rebuild``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, console, out, setup_logging
from growthengine.engine import Engine

if TYPE_CHECKING:
    from growthengine.pipeline.worker_lock import WorkerLock

POLL_S = 0.5

app = typer.Typer(help="Segments: sizes, definitions, members; rebuild from event history.", no_args_is_help=True)


def _engine(db: str | None, config: ConfigOption) -> Engine:
    from growthengine.bootstrap import build_command_engine

    setup_logging()
    return build_command_engine(cli_settings(db, config))


@app.command("list")
def list_segments(db: DbOption = None, config: ConfigOption = None) -> None:
    """Every segment with its size and refresh cadence."""
    engine = _engine(db, config)
    try:
        sizes = engine.segment_sizes()
        table = Table(title="Segments")
        for column in ("key", "name", "refresh", "size"):
            table.add_column(column, justify="right" if column == "size" else "left")
        for key, seg in engine.segments.segments.items():
            table.add_row(key, seg.name, seg.refresh, f"{sizes.get(key, 0):,}")
        out.print(table)
    finally:
        engine.close()


@app.command("show")
def show_segment(
    key: Annotated[str, typer.Argument(help="segment key, e.g. cart_abandoners")],
    limit: Annotated[int, typer.Option(help="members to list")] = 20,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """A segment's definition, size and first members (with why they are in)."""
    engine = _engine(db, config)
    try:
        segment = engine.segments.segments.get(key)
        if segment is None:
            raise CliError(f"no segment {key!r}; known: {', '.join(engine.segments.segments)}")
        raw = (engine.config.raw.get("segments") or {}).get(key)
        out.print(f"[bold]{segment.name}[/] ({key}), refresh {segment.refresh}, "
                  f"size {engine.segment_sizes().get(key, 0):,}")
        if segment.description:
            out.print(segment.description)
        if raw is not None:
            out.print(yaml.safe_dump({key: raw}, allow_unicode=True, sort_keys=False).rstrip())
        with engine.store.transaction() as tx:
            users = tx.segments.members_page(key, after=None, limit=limit)
            table = Table(title=f"First {len(users)} members")
            for column in ("user", "entity", "data", "why"):
                table.add_column(column)
            for user in users:
                for m in tx.segments.members_of_user(user):
                    if m.segment == key:
                        table.add_row(user, m.entity or "-", str(m.data) if m.data else "-", m.reason)
        out.print(table)
    finally:
        engine.close()


@app.command("rebuild")
def rebuild_segments(
    key: Annotated[str | None, typer.Argument(help="one segment key; all when left out")] = None,
    db: DbOption = None,
    config: ConfigOption = None,
    engine_name: Annotated[str, typer.Option("--engine", help="python: per-user rebuild commands in the log, "
                                             "applied by the workers' segment stage in their own batches (state, "
                                             "memberships, timers); sql: memberships set-based in SQL in one "
                                             "transaction (segments it cannot compile fall back to python)")]
    = "python",
) -> None:
    """Recompute memberships from the whole event history; entries it finds start no flow."""
    if engine_name not in ("python", "sql"):
        raise CliError(f"--engine must be python or sql, not {engine_name!r}")
    settings = cli_settings(db, config)
    lock = _sqlite_worker_lock(settings.db_url) if engine_name == "python" else None
    try:
        engine = _engine(db, config)
        try:
            if key is not None and key not in engine.segments.segments:
                raise CliError(f"no segment {key!r}; known: {', '.join(engine.segments.segments)}")
            if engine_name == "sql":
                _sql_rebuild(engine, key)
            else:
                _command_rebuild(engine, key, applies=lock is not None)
        finally:
            engine.close()
    finally:
        if lock is not None:
            lock.release()


def _sqlite_worker_lock(db_url: str) -> WorkerLock | None:
    """SQLite's one-worker lock when no worker holds it (this process then applies the rebuild itself)."""
    from growthengine.pipeline.worker_lock import WorkerLock, WorkerLockHeld, sqlite_lock_path

    path = sqlite_lock_path(db_url)
    if path is None:
        return None  # PostgreSQL: the workers that own the users apply it
    lock = WorkerLock(path)
    try:
        lock.acquire()
    except WorkerLockHeld:
        return None
    return lock


def _command_rebuild(engine: Engine, key: str | None, *, applies: bool) -> None:
    from growthengine.segments.rebuild_commands import rebuild_outcome, rebuild_progress

    job = engine.submit_segment_rebuild([key] if key else None)
    columns = (TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TextColumn("users"),
               TimeRemainingColumn())
    with Progress(*columns, transient=True, console=console) as progress:
        task = progress.add_task("rebuild", total=job.users)
        if not applies:
            console.print("the running workers apply the rebuild; waiting for them (Ctrl-C leaves it to them)")
        while True:
            with engine.store.read() as tx:
                done = rebuild_progress(tx, job)
            progress.update(task, completed=done)
            if done >= job.users:
                break
            if applies:
                if engine.pipeline.step() == 0:
                    raise CliError(f"the rebuild stopped after {done:,} of {job.users:,} users")
            else:
                time.sleep(POLL_S)
    if applies and engine.manual:
        engine.process_pending()
    with engine.store.read() as tx:
        entered, exited = rebuild_outcome(tx, job)
    out.print(f"rebuilt {key or 'all segments'} for {job.users:,} users: {entered:,} entered, {exited:,} left")


def _sql_rebuild(engine: Engine, key: str | None) -> None:
    from growthengine.segments.sql_rebuild import sql_rebuild

    with engine.store.transaction() as tx:
        result = sql_rebuild(engine.segments, tx, [key] if key else None)
    fallback = f"; by the Python evaluator (not compilable): {', '.join(result.fell_back)}" if result.fell_back else ""
    out.print(f"rebuilt {key or 'all segments'} in SQL ({', '.join(result.compiled) or 'none'}): "
              f"{result.entered:,} entered, {result.exited:,} left{fallback}")
    if result.disagreements:
        out.print(f"[red]{result.disagreements:,} users left as stored: SQL and the evaluator disagreed "
                  "(see the log)[/]")

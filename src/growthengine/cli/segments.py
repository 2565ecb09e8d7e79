"""``growth segments list|show|rebuild``."""

from __future__ import annotations

from typing import Annotated

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, out, setup_logging
from growthengine.engine import Engine

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
    engine_name: Annotated[str, typer.Option("--engine", help="python: replay every user's events through the "
                                             "evaluator (state, memberships, timers); sql: memberships set-based "
                                             "in SQL, starting no flow (segments it cannot compile fall back to "
                                             "python)")] = "python",
) -> None:
    """Recompute memberships from the whole event history."""
    if engine_name not in ("python", "sql"):
        raise CliError(f"--engine must be python or sql, not {engine_name!r}")
    engine = _engine(db, config)
    try:
        if key is not None and key not in engine.segments.segments:
            raise CliError(f"no segment {key!r}; known: {', '.join(engine.segments.segments)}")
        if engine_name == "sql":
            _sql_rebuild(engine, key)
            return
        with engine.store.transaction() as tx:
            total = tx.events.count()
        columns = (TextColumn("rebuilding"), BarColumn(), MofNCompleteColumn(), TextColumn("events"),
                   TimeRemainingColumn())
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task("rebuild", total=total)
            result = engine.rebuild_segments([key] if key else None,
                                             progress=lambda n: progress.advance(task, n))
        out.print(f"rebuilt {key or 'all segments'} from {result.events:,} events of {result.users:,} users: "
                  f"{result.entered:,} entered, {result.exited:,} left")
    finally:
        engine.close()


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

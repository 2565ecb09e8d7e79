"""``growth import FILE [--db URL] [--start-flows] [--dry-run]``: JSON Lines of Segment-spec calls loaded as history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, console, out, setup_logging
from growthengine.ingest.history import BATCH_LINES, BULK_BATCH_LINES, ImportReport, check_history, import_history
from growthengine.settings import Settings

SHOWN_PROBLEMS = 20


def import_command(
    file: Annotated[Path, typer.Argument(help="JSON Lines: one Segment-spec call (identify, track, ...) a line")],
    db: DbOption = None,
    config: ConfigOption = None,
    start_flows: Annotated[bool, typer.Option("--start-flows", help="let the history start flows, as live calls "
                                                                    "would (entries still obey flow_entry_max_lag)")]
    = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate every line, store nothing")] = False,
) -> None:
    """Load a history: every line validated as ingestion does, idempotent by messageId, bad lines reported by number
    and skipped. It builds segment state and memberships; it starts no flow unless --start-flows."""
    if not file.is_file():
        raise CliError(f"no file {file}")
    settings = cli_settings(db, config)
    setup_logging(settings)
    if dry_run:
        report = _with_progress(file, lambda advance: check_history(
            file, _business_now(settings), dt.timedelta(seconds=settings.future_tolerance_s), advance))
        _summary(report, "valid (dry run: nothing stored)")
        return
    from growthengine.bootstrap import build_command_engine
    from growthengine.pipeline.worker_lock import WorkerLock, WorkerLockHeld, sqlite_lock_path

    lock_path = sqlite_lock_path(settings.db_url)
    lock = WorkerLock(lock_path) if lock_path is not None else None
    if lock is not None:
        try:
            lock.acquire()
        except WorkerLockHeld:
            lock = None  # the running worker applies what is stored
    applies = lock is not None  # on PostgreSQL the workers that own the users apply it
    engine = build_command_engine(settings)
    if applies:
        # This process applies the stages as ``growth worker`` does, for as long as the file takes: its collector
        # is set up the same way (benchmarks/README.md "Import": the stages' part 6-15 % less CPU).
        from growthengine.scheduler.collector import settle_long_running_process

        settle_long_running_process()
    try:
        after_batch: Callable[[], object] | None = None
        if applies:
            after_batch = engine.process_pending if engine.manual else engine.pipeline.drain
        # Smaller transactions only beside a running SQLite worker (the engine's ingestion waits for the lock).
        beside_worker = lock_path is not None and lock is None
        report = _with_progress(file, lambda advance: import_history(
            engine.ingestion, file, start_flows=start_flows, progress=advance,
            after_batch=after_batch, batch_lines=BATCH_LINES if beside_worker else BULK_BATCH_LINES))
        if applies and not engine.manual:
            engine.run_due()  # segment timers the history made due
            engine.pipeline.drain()
    finally:
        engine.close()
        if lock is not None:
            lock.release()
    _summary(report, "stored")
    if not applies:
        out.print("a running worker applies the stored history to segments")


def _business_now(settings: Settings) -> dt.datetime:
    """The engine's business time for a dry run, read without writing to the database."""
    from sqlalchemy.engine import make_url

    from growthengine import business_time
    from growthengine.clock import RealClock
    from growthengine.storage.unit_of_work import Store

    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).expanduser().is_file()):
        return RealClock().now()
    store = Store.open(settings.db_url, migrate_schema=False)
    try:
        with store.read() as tx:
            clock = business_time.stored_manual_clock(tx)
    except Exception:  # a database without the engine's tables yet: the real clock
        clock = None
    finally:
        store.close()
    return (clock or RealClock()).now()


def _with_progress(file: Path, work: Callable[[Callable[[int], None]], ImportReport]) -> ImportReport:
    columns = (TextColumn("importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, console=console) as progress:
        task = progress.add_task("import", total=file.stat().st_size)
        return work(lambda n: progress.advance(task, n))


def _summary(report: ImportReport, verb: str) -> None:
    for line, why in report.problems[:SHOWN_PROBLEMS]:
        console.print(f"line {line}: {why}", soft_wrap=True, markup=False, highlight=False)
    if report.bad > SHOWN_PROBLEMS:
        console.print(f"... and {report.bad - SHOWN_PROBLEMS:,} more bad lines")
    out.print(f"{report.lines:,} lines: {report.accepted:,} {verb}, {report.duplicates:,} duplicates, "
              f"{report.bad:,} bad (skipped)")
    if report.bad and not report.accepted and not report.duplicates:
        raise typer.Exit(1)  # nothing in the file could be used: a failure; otherwise bad lines are skipped

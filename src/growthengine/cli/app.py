"""The ``growth`` program."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Annotated

import typer

from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, console, setup_logging
from growthengine.cli.simulate import simulate as simulate_command
from growthengine.cli.simulate import start_live_simulation
from growthengine.settings import Settings
from growthengine.timefmt import TimeFormatError, parse_instant

app = typer.Typer(help="Growth Engine: marketing automation for marketplaces.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _root() -> None:
    """Growth Engine: marketing automation for marketplaces."""


@app.command()
def serve(
    db: DbOption = None,
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    clock: Annotated[str | None, typer.Option(help="real, or manual (a test clock moved by POST /v1/clock/advance); "
                                              "default real, or manual with --simulate")] = None,
    start: Annotated[str | None, typer.Option(help="start of the manual clock, ISO-8601")] = None,
    simulate: Annotated[bool, typer.Option("--simulate", help="stream a simulated marketplace in, on a simulated "
                                           "clock that it drives unless --clock real (make run)")] = False,
    api_only: Annotated[bool, typer.Option("--api-only", help="API and dashboard only; `growth worker` processes "
                                           "do the pipeline, timers and deliveries")] = False,
) -> None:
    """Run the engine: API, dashboard and one embedded worker (pipeline, timers, deliveries)."""
    import uvicorn

    from growthengine.api.app import create_app
    from growthengine.bootstrap import build_engine
    from growthengine.keys import first_key_line, load_keyring
    from growthengine.scheduler.collector import settle_long_running_process

    if clock is None:
        # make run: the simulated marketplace drives a manual clock (business time simulated, system time real).
        clock = "manual" if simulate and not api_only else "real"
    if clock not in ("real", "manual"):
        raise CliError("--clock must be real or manual")
    start_at: dt.datetime | None = None
    if start is not None:
        try:
            start_at = parse_instant(start, field="--start", require_offset=True)
        except TimeFormatError as exc:
            raise CliError(str(exc)) from None
    if clock == "manual" and start_at is None and not simulate:
        raise CliError("--clock manual needs --start ISO, for example --start 2026-01-05T09:00:00+07:00")
    if clock == "manual" and api_only:
        raise CliError("the manual clock exists only in the single-process growth serve: drop --api-only")
    if clock == "manual" and simulate:
        settings = _simulated_clock_settings(cli_settings(db, config, host=host, port=port), start_at)
    else:
        settings = cli_settings(db, config, host=host, port=port, clock=clock, clock_start=start_at)
    setup_logging(settings, default_level=logging.INFO)
    engine = build_engine(settings)
    keys, new_key = load_keyring(settings, engine.store)
    if new_key is not None:
        # One plain line on standard output, never wrapped, so that scripts can read it.
        print(first_key_line(new_key), flush=True)
    live = None
    if simulate:
        # The in-process simulator gets a key of its own, made for this run and kept only in memory.
        sim_key = new_key or settings.api_key or keys.add_ephemeral_admin()
        live = start_live_simulation(settings, sim_key, drives_clock=clock == "manual")
    api = create_app(engine, keys, run_workers=not api_only)
    role = "API only" if api_only else "API and worker"
    settle_long_running_process()
    console.print(f"Growth Engine on http://{settings.host}:{settings.port} ({engine.store.dialect}, "
                  f"{engine.clock.mode} clock, {role})")
    try:
        uvicorn.run(api, host=settings.host, port=settings.port, log_config=None, access_log=False)
    finally:
        if live is not None:
            live.set()
        engine.close()


def _simulated_clock_settings(settings: Settings, start_at: dt.datetime | None) -> Settings:
    """``growth serve --simulate`` on the manual clock that the simulator drives: it starts at ``--start``, else
    where it stopped on this database, else (a fresh one) the demo's replayed days before the wall clock's now."""
    from growthengine.clock import RealClock
    from growthengine.simulate.clock_driver import DEMO_REPLAY_DAYS, demo_start
    from growthengine.storage.unit_of_work import Store

    if start_at is None:
        store = Store.open(settings.db_url)
        try:
            start_at = demo_start(store, RealClock().now(), dt.timedelta(days=DEMO_REPLAY_DAYS))
        finally:
            store.close()
    return settings.model_copy(update={"clock": "manual", "clock_start": start_at})


@app.command()
def worker(db: DbOption = None, config: ConfigOption = None) -> None:
    """Run a worker: the pipeline's stages, timers and deliveries for a share of the users; no API.

    On PostgreSQL any number of workers share the users through partition leases; on SQLite one worker runs at a
    time (the one inside ``growth serve`` counts).
    """
    from growthengine.api.app import config_watcher
    from growthengine.bootstrap import build_engine
    from growthengine.clock import system_seconds
    from growthengine.pipeline.child import listen_for_signals
    from growthengine.pipeline.ownership import JOIN_WAIT_S, LeasedOwnership
    from growthengine.pipeline.worker import Worker
    from growthengine.pipeline.worker_lock import WorkerLock, WorkerLockHeld, sqlite_lock_path
    from growthengine.scheduler.collector import settle_long_running_process

    settings = cli_settings(db, config)
    setup_logging(settings, default_level=logging.INFO)
    lock_path = sqlite_lock_path(settings.db_url)
    lock = WorkerLock(lock_path) if lock_path is not None else None
    if lock is not None:
        try:
            lock.acquire()
        except WorkerLockHeld as exc:
            raise CliError(str(exc)) from None
    engine = build_engine(settings)
    ownership = None
    if lock is None:
        ownership = LeasedOwnership(engine.store, system_seconds)
        engine.use_ownership(ownership)
    runner = Worker(engine, refresh_ownership=ownership.refresh if ownership else None,
                    on_idle=config_watcher(engine))

    def _stop() -> None:
        runner.stop.set()
        engine.delivery.work_arrived.set()

    # SIGTERM and SIGINT stop the worker; new work in the log (growth serve's ingestion, when this worker is its
    # child) makes it look now, not at its next poll.
    listen_for_signals(engine.work_arrived, _stop)
    settle_long_running_process()
    console.print(f"growth worker on {engine.store.dialect}"
                  + (f" as {ownership.worker_id}" if ownership else " (every partition; file lock held)"))
    deliveries = None
    try:
        import threading

        if ownership is not None:
            ownership.announce()  # workers started together count each other before any takes a partition
            runner.stop.wait(JOIN_WAIT_S)

        deliveries = threading.Thread(target=runner.run_deliveries, name="growth-deliveries", daemon=True)
        deliveries.start()
        runner.run()
    finally:
        runner.shutdown()
        if ownership is not None:
            ownership.release()
        if lock is not None:
            lock.release()
        engine.close()


def _register() -> None:
    from growthengine.cli import (
        bench,
        bench_import,
        bench_pipeline,
        check_config,
        config_export,
        db,
        flows,
        history_import,
        keys,
        segments,
        users,
    )

    del bench_pipeline, bench_import  # register ``growth bench pipeline`` and ``import`` on the bench group

    app.add_typer(segments.app, name="segments")
    app.add_typer(flows.app, name="flows")
    app.add_typer(bench.app, name="bench")
    app.command("check-config")(check_config.check_config)
    app.add_typer(keys.app, name="keys")
    app.add_typer(db.app, name="db")
    app.add_typer(users.app, name="users")
    app.command("import")(history_import.import_command)
    app.add_typer(config_export.app, name="config")


_register()
app.command("simulate")(simulate_command)


def main() -> None:
    """Entry point: every failure is one clear line and a non-zero exit, never a bare traceback."""
    from growthengine.bootstrap import StartupError
    from growthengine.storage.database import DatabaseURLError

    try:
        app()
    except (CliError, StartupError, DatabaseURLError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        sys.exit(2)
    except Exception as exc:
        logging.getLogger("growthengine.cli").debug("unexpected failure", exc_info=True)
        console.print(f"[red]error:[/] {type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()

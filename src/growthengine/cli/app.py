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
    clock: Annotated[str, typer.Option(help="real, or manual (a test clock moved by POST /v1/clock/advance)")] = "real",
    start: Annotated[str | None, typer.Option(help="start of the manual clock, ISO-8601")] = None,
    simulate: Annotated[bool, typer.Option("--simulate", help="stream a simulated marketplace in (make run)")] = False,
) -> None:
    """Run the engine: API, workers, scheduler (and dashboard)."""
    import uvicorn

    from growthengine.api.app import create_app
    from growthengine.bootstrap import build_engine
    from growthengine.keys import first_key_line, load_keyring

    if clock not in ("real", "manual"):
        raise CliError("--clock must be real or manual")
    start_at: dt.datetime | None = None
    if start is not None:
        try:
            start_at = parse_instant(start, field="--start", require_offset=True)
        except TimeFormatError as exc:
            raise CliError(str(exc)) from None
    if clock == "manual" and start_at is None:
        raise CliError("--clock manual needs --start ISO, for example --start 2026-01-05T09:00:00+07:00")
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
        live = start_live_simulation(settings, sim_key)
    api = create_app(engine, keys)
    console.print(f"Growth Engine on http://{settings.host}:{settings.port} ({engine.store.dialect}, "
                  f"{engine.clock.mode} clock)")
    try:
        uvicorn.run(api, host=settings.host, port=settings.port, log_config=None, access_log=False)
    finally:
        if live is not None:
            live.set()
        engine.close()


def _register() -> None:
    from growthengine.cli import bench, check_config, db, flows, keys, segments

    app.add_typer(segments.app, name="segments")
    app.add_typer(flows.app, name="flows")
    app.add_typer(bench.app, name="bench")
    app.command("check-config")(check_config.check_config)
    app.add_typer(keys.app, name="keys")
    app.add_typer(db.app, name="db")


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

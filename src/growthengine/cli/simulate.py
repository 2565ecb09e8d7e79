"""``growth simulate``: a synthetic marketplace driven through the engine on a simulated clock."""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from growthengine.cli.options import CliError, ConfigOption, DbOption, cli_settings, console, out
from growthengine.settings import Settings
from growthengine.timefmt import TimeFormatError, parse_instant

DEFAULT_START = "2026-01-05T00:00:00+07:00"


def simulate(
    users: Annotated[int, typer.Option("--users", min=1, help="how many simulated users")] = 1000,
    days: Annotated[float, typer.Option("--days", min=0.05, help="how many simulated days")] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="the same seed gives the same marketplace")] = 7,
    db: DbOption = None,
    config: ConfigOption = None,
    start: Annotated[str, typer.Option("--start", help="simulated start time, ISO-8601")] = DEFAULT_START,
    tick: Annotated[int, typer.Option("--tick-minutes", min=1, max=60,
                                      help="events go in one tick ahead of the clock, then it advances")] = 15,
    control: Annotated[float, typer.Option("--control", min=0, max=50,
                                           help="percent of users in a global control group that gets no "
                                                "marketing, so each flow's uplift can be measured")] = 10.0,
) -> None:
    """Drive a simulated JaiKod marketplace through the engine on a simulated clock; print a KPI summary."""
    from growthengine.bootstrap import build_engine
    from growthengine.clock import ManualClock
    from growthengine.simulate.batch import SimulationError, run_simulation
    from growthengine.simulate.report import print_report

    try:
        start_at = parse_instant(start, field="--start", require_offset=True)
    except TimeFormatError as exc:
        raise CliError(str(exc)) from None
    data_dir: Path | None = None
    if db is None:
        # A throw-away database: in memory-backed /dev/shm where there is one (disk syncs would double the run time).
        shm = Path("/dev/shm")  # noqa: S108 - a private directory is made inside it
        data_dir = Path(tempfile.mkdtemp(prefix="growth-sim-", dir=shm if shm.is_dir() else None))
        db = f"sqlite:///{data_dir / 'growth.db'}"
        console.print(f"database: {db} (a fresh file; pass --db to choose)")
    settings = cli_settings(db, config, clock="manual", clock_start=start_at, data_dir=data_dir)
    settings = settings.model_copy(update={"global_control_pct": control})
    if settings.future_tolerance_s < tick * 60:
        # The simulator is this engine's only client and shares its clock: let it stamp a whole tick ahead.
        settings = settings.model_copy(update={"future_tolerance_s": tick * 60.0})
    clock = ManualClock(start_at)
    engine = build_engine(settings, clock=clock)
    began = time.perf_counter()  # for the run-time line of the summary only; simulated time is the engine's clock
    try:
        report = run_simulation(engine, users, days, seed, progress=True, console=console,
                                tick=dt.timedelta(minutes=tick))
    except SimulationError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.close()
    print_report(report, out, elapsed_s=time.perf_counter() - began)
    if report.rejected:
        raise CliError(f"{report.rejected} simulated calls were rejected (first: {report.first_rejection})")


def start_live_simulation(settings: Settings, new_key: str | None, *, drives_clock: bool) -> threading.Event:
    """For ``growth serve --simulate``: stream a live marketplace into this server; set the event to stop it.

    With ``drives_clock`` (the engine on its manual clock, ``make run``) the simulator moves the engine's clock:
    a fresh engine's last days at full speed, then a simulated day a minute. The simulator needs the admin key in
    plain text: the one made by this run, else ``GROWTH_API_KEY``.
    """
    from growthengine.settings import served_url
    from growthengine.simulate.clock_driver import DEMO_DAY_SECONDS, DEMO_REPLAY_DAYS
    from growthengine.simulate.live import REAL_CLOCK_DAY_SECONDS, start_in_background

    key = new_key or settings.api_key
    if not key:
        raise CliError(
            "--simulate needs the admin API key, but only its hash is kept from an earlier run: set GROWTH_API_KEY "
            "to that key, or to a new one from: growth keys create NAME --role admin"
        )
    url = served_url(settings.host, settings.port)
    if drives_clock:
        _, stop = start_in_background(url, key, day_seconds=DEMO_DAY_SECONDS, replay_days=DEMO_REPLAY_DAYS)
        console.print(f"Simulated marketplace streaming into {url} on a simulated clock (a fresh database: "
                      f"{DEMO_REPLAY_DAYS:g} days at full speed, then a simulated day every {DEMO_DAY_SECONDS:g} s)")
    else:
        _, stop = start_in_background(url, key, day_seconds=REAL_CLOCK_DAY_SECONDS)
        console.print(f"Simulated marketplace streaming into {url} on the real clock (its users live a simulated "
                      f"day every {REAL_CLOCK_DAY_SECONDS / 60:g} minutes)")
    return stop

"""Batch mode: drive an engine on its manual clock through simulated days (``growth simulate``).

Each hour is planned at once; then, tick by tick, the tick's events are ingested (stamped at most one tick ahead
of the engine's clock, within what ingestion accepts), the clock is advanced to the tick's end so that the timers
falling due fire at their own times, and the users answer the messages the engine sent meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from growthengine.clock import ManualClock, from_us, to_us
from growthengine.engine import Engine
from growthengine.simulate.feedback import EngineMessageSource, MessageSource, respond
from growthengine.simulate.marketplace import HOUR_US, Marketplace, to_call
from growthengine.simulate.outcomes import flow_uplift
from growthengine.simulate.report import SimulationReport, engine_figures

log = logging.getLogger(__name__)

DEFAULT_SEED = 7
DEFAULT_TICK = dt.timedelta(minutes=5)


class SimulationError(RuntimeError):
    """The simulation cannot run as asked; the message says why."""


def generate_events(users: int, days: float, seed: int = DEFAULT_SEED, *,
                    start: dt.datetime) -> list[dict[str, Any]]:
    """The calls a marketplace makes over ``days`` from ``start``, without an engine (and so without messages)."""
    market = Marketplace(users, seed, start)
    market.open()
    calls: list[dict[str, Any]] = []
    prefix = f"sim{seed}"
    hours = round(days * 24)
    for hour in range(hours):
        hour_us = market.start_us + hour * HOUR_US
        market.plan_hour(hour_us)
        calls.extend(to_call(e, prefix=prefix) for e in market.drain(hour_us + HOUR_US))
    return calls


def measure_ai_layer(engine: Engine, report: SimulationReport) -> None:
    """Per flow uplift against the control group, the experiments' verdicts, the channel switches."""

    messages = engine.messages(limit=10_000_000)
    end_us = to_us(report.end or engine.clock.now())
    days = int(engine.settings.attribution_days)
    report.attribution_days = days
    report.control_pct = float(engine.settings.global_control_pct)
    report.uplift = flow_uplift(messages, report.stats.orders, window_us=days * 86_400_000_000, end_us=end_us)
    report.experiments = engine.experiments()
    switched = [m for m in messages if m.reason == "channel_score"]
    qualifying = 0
    for user in {m.user_id for m in messages}:
        scores = engine.channel_scores(user) or {}
        qualifying += int(scores.get("email", 1.0) < 0.1 and scores.get("push", 0.0) > 0.8)
    report.channel_switches = {"switched": len(switched), "users": len({m.user_id for m in switched}),
                               "opened": sum(1 for m in switched if m.status in ("opened", "clicked")),
                               "qualifying": qualifying}


def run_simulation(
    engine: Engine,
    users: int,
    days: float,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
    *,
    messages: MessageSource | None = None,
    tick: dt.timedelta = DEFAULT_TICK,
    console: Console | None = None,
) -> SimulationReport:
    """Run ``users`` simulated users for ``days`` through ``engine``, starting at its clock's now."""
    clock = engine.clock
    if not isinstance(clock, ManualClock):
        raise SimulationError("the simulation drives the engine's clock: build the engine on a manual clock")
    if users < 1 or days <= 0:
        raise SimulationError("the simulation needs at least one user and a positive number of days")
    tolerance = dt.timedelta(seconds=engine.settings.future_tolerance_s)
    ahead = tolerance > dt.timedelta(0)
    tick_us = (min(tick, tolerance) if ahead else tick) // dt.timedelta(microseconds=1)
    if tick_us <= 0:
        raise SimulationError("the tick must be positive")
    source = messages if messages is not None else EngineMessageSource(engine)
    start = clock.now()
    market = Marketplace(users, seed, start)
    report = SimulationReport(users=users, days=days, seed=seed, start=start, stats=market.stats)
    prefix = f"sim{seed}-{to_us(start)}"
    hours = round(days * 24)

    bar = Progress(TextColumn("[bold]simulating[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("hours"),
                   TextColumn("{task.fields[events]:,} events"), TimeElapsedColumn(),
                   console=console, transient=True, disable=not progress)
    with bar:
        task = bar.add_task("simulate", total=hours, events=0)
        market.open()
        for hour in range(hours):
            hour_us = market.start_us + hour * HOUR_US
            market.plan_hour(hour_us)
            t0 = hour_us
            while t0 < hour_us + HOUR_US:
                t1 = min(t0 + tick_us, hour_us + HOUR_US)
                if not ahead:
                    engine.advance(from_us(t1))  # no stamping ahead allowed: the tick's events arrive as backfill
                batch = market.drain(t1)
                if batch:
                    report.add(engine.ingest([to_call(e, prefix=prefix) for e in batch]))
                if ahead:
                    engine.advance(from_us(t1))
                sent = source.new_messages()
                if sent:
                    respond(market, sent, t1)
                t0 = t1
            bar.update(task, advance=1, events=report.accepted)
    # What is still planned (sessions running past the end, answers to late messages) is not sent.
    report.end = clock.now()
    report.leftover = market.pending
    report.segment_sizes, report.message_counts = engine_figures(engine)
    measure_ai_layer(engine, report)
    if report.rejected:
        log.warning("simulation: %d calls rejected (first: %s)", report.rejected, report.first_rejection)
    return report

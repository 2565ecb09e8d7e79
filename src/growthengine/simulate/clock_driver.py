"""The demo's simulated clock: the live simulator moves the engine's manual clock (``growth serve --simulate``).

Business time may be simulated; system time is always real (DESIGN.md, "One clock"). So the demo engine runs on a
manual clock and the simulated marketplace, its driver, moves it: each tick (15 simulated minutes)
``POST /v1/clock/advance`` moves the clock to the tick's end, so that every timer (a cart's hour running out, a
flow's wait, a best send time, the daily segment refresh and snapshot) fires at its own simulated time; then the
tick's events go in stamped with their simulated times, at most one tick behind the clock (never ahead of it: a
pattern opened by an event from the engine's future would get no deadline timer), so entries are found well within
``flow_entry_max_lag``. Every simulated hour the users answer the messages the engine sent.

A fresh demo first runs ``replay`` simulated days at full speed (the clock starts that far behind the wall clock),
so that the dashboard's daily charts and the send-time heatmap have days of messages to show; then simulated time
runs at a simulated day per ``day_seconds`` real seconds. When the engine cannot keep that pace (a loaded machine),
simulated time runs slower: ticks are never skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from growthengine import business_time
from growthengine.clock import from_us, to_us
from growthengine.simulate.feedback import MessageSource, respond
from growthengine.simulate.marketplace import DAY_US, HOUR_US, Marketplace, SimEvent
from growthengine.storage.unit_of_work import Store

log = logging.getLogger(__name__)

MINUTE_US = 60_000_000
DEMO_TICK = dt.timedelta(minutes=15)
DEMO_DAY_SECONDS = 60.0
"""Real seconds per simulated day once the replay is done: a cart's hour of simulated time is 2.5 real seconds."""
DEMO_REPLAY_DAYS = 7.0
"""Simulated days a fresh demo runs through at full speed, ending at the wall clock's time."""


@dataclass(frozen=True)
class Pace:
    """How the driver moves simulated time."""

    day_seconds: float = DEMO_DAY_SECONDS
    tick_us: int = int(DEMO_TICK / dt.timedelta(microseconds=1))
    replay_us: int = 0
    """Simulated time run through at full speed before pacing starts."""
    answer_every_us: int = HOUR_US
    """Simulated time between two reads of the messages the engine sent."""


PostEvents = Callable[[list[SimEvent]], None]
AdvanceClock = Callable[[int], int]
"""Moves the engine's clock to the given instant (µs) and answers where the clock stands afterwards."""


@dataclass
class DriveStats:
    live_events: int = 0
    ticks: int = 0
    simulated_until_us: int = 0


def drive_clock(market: Marketplace, post: PostEvents, advance: AdvanceClock, source: MessageSource,
                stop: threading.Event, *, start_us: int, next_hour_us: int, pace: Pace,
                max_events: int | None = None, stats: DriveStats | None = None) -> DriveStats:
    """Tick by tick from ``start_us`` (the engine's now) until ``stop`` is set or ``max_events`` went in."""
    stats = stats if stats is not None else DriveStats()
    t0 = start_us
    replay_end = start_us + pace.replay_us
    paced_from: float | None = None  # system time when the replay ended (pacing only)
    last_answer_us = start_us
    last_log = time.monotonic()
    while not stop.is_set():
        t1 = t0 + pace.tick_us
        if t1 > replay_end:
            if paced_from is None:
                paced_from = time.monotonic()
                if pace.replay_us:
                    log.info("simulator: %g simulated days replayed; now a simulated day every %g s",
                             pace.replay_us / DAY_US, pace.day_seconds)
            due = paced_from + (t1 - replay_end) / DAY_US * pace.day_seconds
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                break
        while next_hour_us < t1:
            market.plan_hour(next_hour_us)
            next_hour_us += HOUR_US
        now_us = advance(t1)
        stats.ticks += 1
        batch = market.drain(t1)
        if max_events is not None:
            batch = batch[: max(0, max_events - stats.live_events)]
        if batch:
            stats.live_events += len(batch)
            post(batch)
        if max_events is not None and stats.live_events >= max_events:
            stats.simulated_until_us = now_us
            break
        if now_us - last_answer_us >= pace.answer_every_us:
            last_answer_us = now_us
            sent = source.new_messages()
            if sent:
                respond(market, sent, now_us)
        # Someone else moved the clock further (POST /v1/clock/advance by hand): go on from there.
        t0 = max(t1, now_us)
        stats.simulated_until_us = t0
        if time.monotonic() - last_log >= 60.0:
            last_log = time.monotonic()
            log.info("simulator: %d live events posted, simulated %s", stats.live_events,
                     from_us(t0).isoformat(timespec="minutes"))
    return stats


def demo_start(store: Store, wall_now: dt.datetime, replay: dt.timedelta) -> dt.datetime:
    """Where the demo's manual clock starts: where it stopped last time on this database; on a database written on
    the real clock, the wall clock's now; on a fresh one, ``replay`` before it (at a whole hour)."""
    with store.read() as tx:
        stored = business_time.stored_manual_clock(tx)
        written = tx.state.get(business_time.STATE_KEY) is not None
    if stored is not None:
        return stored.now()
    if written:
        return wall_now
    start_us = to_us(wall_now - replay)
    return from_us(start_us - start_us % HOUR_US)

"""The demo's simulated clock: the live simulator moves the engine's manual clock tick by tick (``make run``)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock, RealClock, from_us, to_us
from growthengine.engine import Engine
from growthengine.settings import Settings
from growthengine.simulate.clock_driver import MINUTE_US, DriveStats, Pace, demo_start, drive_clock
from growthengine.simulate.feedback import EngineMessageSource
from growthengine.simulate.marketplace import DAY_US, HOUR_US, Marketplace, SimEvent, to_call
from growthengine.storage.unit_of_work import Store

DAY = dt.timedelta(days=1)


def test_replayed_days_move_the_engine_clock_with_the_events_and_fire_the_cart_flow(engine: Engine) -> None:
    start_us = to_us(engine.clock.now())
    market = Marketplace(250, 7, from_us(start_us))
    market.open()
    stop = threading.Event()
    seen: list[tuple[int, int]] = []  # (the clock at a post, the latest event time in it)

    def post(batch: list[SimEvent]) -> None:
        seen.append((to_us(engine.clock.now()), max(e[0] for e in batch)))
        result = engine.ingest([to_call(e, prefix="drv") for e in batch])
        assert not result.rejected, result.rejected[:1]

    def advance(to: int) -> int:
        engine.advance(from_us(to))
        if to >= start_us + 2 * DAY_US:
            stop.set()
        return to_us(engine.clock.now())

    tick_us = 15 * MINUTE_US
    stats = drive_clock(market, post, advance, EngineMessageSource(engine), stop, start_us=start_us,
                        next_hour_us=start_us, pace=Pace(tick_us=tick_us, replay_us=2 * DAY_US), stats=DriveStats())
    # The replay runs without pacing and stops exactly at the tick that reached two days: the clock followed it.
    assert engine.clock.now() == from_us(start_us + 2 * DAY_US) == from_us(stats.simulated_until_us)
    assert stats.ticks == 2 * DAY_US // tick_us and stats.live_events > 1000
    # Events went in stamped with their simulated time, never ahead of the engine's clock and at most a tick behind.
    assert all(0 <= clock_us - latest <= tick_us for clock_us, latest in seen)
    sizes = engine.segment_sizes()
    assert sizes["window_shoppers"] > 0, sizes
    # Carts abandoned for an hour of simulated time started the cart flow: its messages exist.
    carts = engine.messages(flow="cart_abandonment", limit=1000)
    assert carts, "the cart flow did not fire"
    assert all(start_us + HOUR_US <= m.scheduled_us <= start_us + 2 * DAY_US + DAY_US for m in carts)


def test_the_demo_clock_starts_where_it_stopped_else_replayed_days_before_now(tmp_path: Path) -> None:
    wall = RealClock().now()
    replay = dt.timedelta(days=7)
    fresh = Store.open(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        start = demo_start(fresh, wall, replay)
    finally:
        fresh.close()
    assert start <= wall - replay < start + dt.timedelta(hours=1)
    assert start.minute == start.second == start.microsecond == 0

    url = f"sqlite:///{tmp_path / 'used.db'}"
    stopped = dt.datetime(2027, 3, 1, 12, 34, tzinfo=dt.UTC)
    settings = Settings(db_url=url, data_dir=tmp_path / "data", clock="manual", clock_start=stopped)
    build_engine(settings, clock=ManualClock(stopped)).close()
    used = Store.open(url)
    try:
        assert demo_start(used, wall, replay) == stopped  # the simulated clock never goes back
    finally:
        used.close()

    real_url = f"sqlite:///{tmp_path / 'real.db'}"
    build_engine(Settings(db_url=real_url, data_dir=tmp_path / "data"), clock=RealClock()).close()
    real = Store.open(real_url)
    try:
        assert demo_start(real, wall, replay) == wall  # after the real clock: no days before its data
    finally:
        real.close()

"""``growth bench segments --instant``: N segment timers due at one instant, the segment stage's own share.

One engine wired by :func:`growthengine.bootstrap.build_engine` (the five default segments) on a SQLite file and a
manual clock. ``timers`` new users each put one item in their cart at the same instant T (ingested in batches,
untimed), so each has one pending ``cart_abandoners`` timer, all due at T + 1 h. Then ``Engine.advance`` to T + 1 h
is timed: from the clock passing the instant to every timer fired and every resulting ``enter`` transition stored
(committed). The counts are checked afterwards: no segment timer left, one ``enter`` per user.

By default no flow listens (the segment engine's transition listeners, the flow engine and the ads audiences, are
detached during the timing), so the figure is the segment stage's own share: the scheduler's claims, the states,
the rules, the members, transitions and next timers written. With ``flows`` they stay attached and their share
(the time inside the listeners, the enrolments they defer to the end of each group and the rounds after each commit)
is reported separately. With ``cold`` the states held in memory are forgotten first
(each is read from the database, as most would be at 1,000,000 users).

The process runs under the collector's set-up of ``growth worker`` (``scheduler/collector.py``, as the engine is
built; put back afterwards). Time is measured with ``time.perf_counter``; the engine itself never reads the wall
clock.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from growthengine.bench.ingest import Advance, BenchError
from growthengine.bench.segments import TimedBatch, _TimedTransitions, as_long_running_worker, open_bench_engine
from growthengine.bench.workload import BENCH_START
from growthengine.engine import Engine
from growthengine.segments.segment_pass import TIMER_KIND as SEGMENT_TIMER

TARGET_INSTANT_RATE = 50_000.0
TARGET_INSTANT_TIMERS = 1_000_000
CART_SEGMENT = "cart_abandoners"


@dataclass(frozen=True)
class InstantSize:
    timers: int = 50_000
    batch: int = 1_000
    """Carts per ``Engine.ingest`` call while setting up (untimed)."""
    flows: bool = False
    """Keep the flows (and ads audiences) listening to the transitions; their share is then reported apart."""
    cold: bool = False
    """Forget the segment states held in memory before the timing: every state is read from the database, as for
    most users at 1,000,000 (the cache keeps 200,000)."""


@dataclass
class InstantTimers:
    size: InstantSize
    pending: int
    """Segment timers pending before the advance (all due at the one instant)."""
    fired: int
    """Timers the advance fired (every kind)."""
    entered: int
    """``enter`` transitions of ``cart_abandoners`` stored by the advance."""
    left: int
    """Segment timers still pending after the advance at or before the instant (must be 0)."""
    seconds: float
    cpu_s: float
    listeners_s: float
    """The flows' share (0 when none listens): inside the listeners, their deferred enrolments, the rounds of the
    stages, activities and deliveries after each commit."""
    setup_s: float

    @property
    def rate(self) -> float:
        """Segment timers fired per second of the advance (flows' share included when they listen)."""
        return self.pending / self.seconds if self.seconds else 0.0

    @property
    def own_rate(self) -> float:
        """Timers/s of the advance less the time inside the listeners (the segment stage's own share)."""
        own = self.seconds - self.listeners_s
        return self.pending / own if own > 0 else 0.0


def _timed_hook(hook: Callable[[], object], clock: list[float]) -> Callable[[], object]:
    def timed() -> object:
        start = time.perf_counter()
        try:
            return hook()
        finally:
            clock[0] += time.perf_counter() - start
    return timed


def add_carts_at_once(engine: Engine, timers: int, batch: int, progress: Advance) -> None:
    """``timers`` new users each add one item to the cart at the engine's now."""
    at = engine.clock.now().isoformat(timespec="milliseconds")
    for start in range(0, timers, batch):
        calls = [{"type": "track", "event": "add_to_cart", "userId": f"cart{i:07d}", "messageId": f"bench-cart-{i}",
                  "timestamp": at, "properties": {"listing_id": f"LC{i:07d}", "title": "เสื้อยืดวินเทจ 90s",
                                                  "price": 290, "stock": 1}}
                 for i in range(start, min(timers, start + batch))]
        engine.ingest(calls)
        progress(len(calls))


def _count(engine: Engine, sql: str, params: tuple[Any, ...]) -> int:
    with engine.store.engine.connect() as conn:
        return int(conn.exec_driver_sql(sql, params).scalar_one())


def run_instant_bench(size: InstantSize, db_dir: Path, stage: Any) -> InstantTimers:
    """Set up ``size.timers`` pending segment timers due at one instant on a fresh file, then time their firing."""
    db_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        (db_dir / f"instant.db{suffix}").unlink(missing_ok=True)
    start_at = BENCH_START + dt.timedelta(minutes=1)
    engine = open_bench_engine(db_dir / "instant.db", start_at)
    try:
        with as_long_running_worker():  # the collector as growth worker sets it up
            begin = time.perf_counter()
            add_carts_at_once(engine, size.timers, size.batch, stage("carts", size.timers))
            setup_s = time.perf_counter() - begin
            due = start_at + dt.timedelta(hours=1)
            due_us = int(due.timestamp() * 1_000_000)
            pending = _count(engine, "SELECT count(*) FROM timers WHERE kind = ? AND due_us = ?",
                             (SEGMENT_TIMER, due_us))
            others = _count(engine, "SELECT count(*) FROM timers WHERE due_us <= ? AND NOT (kind = ? AND due_us = ?)",
                            (due_us, SEGMENT_TIMER, due_us))
            if pending != size.timers or others:
                raise BenchError(f"expected {size.timers:,} segment timers due at {due.isoformat()} and nothing else "
                                 f"due by then; found {pending:,} and {others:,} others")
            entered_before = _count(engine, "SELECT count(*) FROM segment_transitions WHERE segment_key = ? "
                                    "AND kind = 'enter'", (CART_SEGMENT,))
            segments = engine.segments
            if size.cold:
                segments.forget_cached(None)
            listeners = segments.listeners
            scheduler = engine.scheduler
            batches, hooks = scheduler.batches, scheduler.after_commit
            listeners_s, deferred_s, hooks_s = [0.0], [0.0], [0.0]
            segments.listeners = [_TimedTransitions(x, listeners_s) for x in listeners] if size.flows else []
            # The segment stage's own writes, deferred to each group's end, stay in its share (its listeners' time
            # is counted apart); the other batches (the flows' enrolments) are the flows' share.
            scheduler.batches = [b if b is segments.timer_group else TimedBatch(b, deferred_s) for b in batches]
            scheduler.after_commit = [_timed_hook(h, hooks_s) for h in hooks]
            progress = stage("fire", size.timers)
            try:
                cpu0, begin = time.process_time(), time.perf_counter()
                fired = engine.advance(due)
                seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu0
            finally:
                segments.listeners = listeners
                scheduler.batches, scheduler.after_commit = batches, hooks
            progress(fired)
            entered = _count(engine, "SELECT count(*) FROM segment_transitions WHERE segment_key = ? "
                             "AND kind = 'enter'", (CART_SEGMENT,)) - entered_before
            left = _count(engine, "SELECT count(*) FROM timers WHERE kind = ? AND due_us <= ?",
                          (SEGMENT_TIMER, due_us))
    finally:
        engine.close()
    if entered != size.timers or left:
        raise BenchError(f"{size.timers:,} users should have entered {CART_SEGMENT} with no timer left due; "
                         f"{entered:,} entered, {left:,} left")
    # With the flows listening, their share is the time inside the listeners, the enrolments they defer to the end
    # of each group, and the rounds after each commit (the stages, activities and deliveries the runs bring). With
    # none listening those rounds have nothing of the flows to do and stay in the segment stage's share.
    flows_s = listeners_s[0] + deferred_s[0] + hooks_s[0] if size.flows else 0.0
    return InstantTimers(size=size, pending=pending, fired=fired, entered=entered, left=left, seconds=seconds,
                         cpu_s=cpu, listeners_s=flows_s, setup_s=setup_s)

"""``growth bench flows``: a price drop fanned out to every favoriter, and waiting runs that cost nothing.

Two measurements, each on its own SQLite file (the embedded default), on an engine wired by
:func:`growthengine.bootstrap.build_engine`:

* **price-drop fan-out**: ``favoriters`` users (with push consent and a token) favorite one listing, through
  ``Engine.ingest``; then one ``listing_price_changed`` event (-20 %) is ingested and timed. Inside that one call
  the ``price_drop`` flow enrolls every favoriter, renders the push, gates it and writes it to the send ledger and
  the local outbox. Figure: favoriters / seconds of that call (the setup is not timed). The clock is at 09:00
  Bangkok time, so no quiet hours hold the pushes back.
* **cart timers**: ``carts`` users (push consent and a token) each add an item to the cart, their ``add_to_cart``
  times spread over one minute (milliseconds apart) from 09:30 Bangkok time. Then the manual clock is advanced
  past the last cart's hour, timed: each cart's ``cart_abandoners`` deadline fires at its own instant, the user
  enters the segment, the ``cart_abandonment`` run starts and its push is decided, written to the send ledger and
  the local outbox. Figure: carts / seconds of that advance.
* **waiting runs**: ``waiting`` users register as sellers; each ``seller_coach`` run waits 3 days for a listing.
  The engine is then opened again on the real clock and its worker loop (``Engine.run_due()`` every
  ``worker_interval_s``, as ``growth serve`` runs it) is watched for ``idle_seconds``: the process CPU time it
  spends (``time.process_time``, which also counts the progress bar's refresh thread; the loop's own thread is
  shown beside it, ``time.thread_time``), which should be next to nothing whatever the number of runs.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from growthengine.bench.ingest import Advance
from growthengine.bench.segments import open_bench_engine
from growthengine.bench.workload import BENCH_START
from growthengine.engine import Engine

Stage = Callable[[str, int], Advance]

TARGET_FANOUT_RATE = 10_000.0
TARGET_IDLE_CPU_SHARE = 0.01
"""'No CPU while they wait', read as: the idle worker loop uses under 1 % of one core."""
TARGET_FAVORITERS = 200_000
TARGET_CART_RATE = 10_000.0
TARGET_CARTS = 100_000
TARGET_WAITING = 1_000_000
LISTING = "L-bench-price-drop"
SETUP_BATCH = 1000


@dataclass(frozen=True)
class FlowsSize:
    favoriters: int = 50_000
    waiting: int = 100_000
    carts: int = 20_000
    idle_seconds: float = 5.0
    worker_interval_s: float = 0.5


@dataclass
class FlowsBench:
    size: FlowsSize
    fanout_users: int
    fanout_seconds: float
    fanout_cpu_s: float
    sent: int
    outbox: int
    waiting_runs: int
    idle_seconds: float
    idle_cpu_s: float
    loop_cpu_s: float
    polls: int
    poll_ms: list[float] = field(default_factory=list)
    fired_while_idle: int = 0
    cart_users: int = 0
    cart_seconds: float = 0.0
    cart_cpu_s: float = 0.0
    cart_pushed: int = 0

    @property
    def cart_rate(self) -> float:
        return self.cart_users / self.cart_seconds if self.cart_seconds else 0.0

    @property
    def fanout_rate(self) -> float:
        return self.fanout_users / self.fanout_seconds if self.fanout_seconds else 0.0

    @property
    def idle_cpu_share(self) -> float:
        return self.idle_cpu_s / self.idle_seconds if self.idle_seconds else 0.0


def _at(instant: dt.datetime) -> str:
    return instant.isoformat(timespec="milliseconds")


def _ingest_all(engine: Engine, calls: list[dict[str, Any]], progress: Advance) -> None:
    for start in range(0, len(calls), SETUP_BATCH):
        batch = calls[start:start + SETUP_BATCH]
        result = engine.ingest(batch)
        if result.rejected:
            raise RuntimeError(f"the set-up was refused: {result.rejected[0].error}")
        progress(len(batch))


def _favoriters(count: int, at: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = [{
        "type": "track", "event": "listing_created", "userId": "seller-bench", "messageId": "bench-listing",
        "timestamp": at, "properties": {"listing_id": LISTING, "title": "กล้องฟิล์ม Olympus OM-1", "price": 4500,
                                        "category": "กล้องถ่ายรูป", "image_url": "https://img.example.co.th/om1.jpg"},
    }]
    for i in range(count):
        user = f"fav{i:07d}"
        calls.append({"type": "identify", "userId": user, "messageId": f"bench-id-{i}", "timestamp": at,
                      "traits": {"push_token": f"fcm:{i:x}", "language": "th" if i % 7 else "en",
                                 "consent": {"push": True, "email": i % 2 == 0, "in_app": True}}})
        calls.append({"type": "track", "event": "favorite_added", "userId": user, "messageId": f"bench-fav-{i}",
                      "timestamp": at, "properties": {"listing_id": LISTING}})
    return calls


def measure_fanout(db_file: Path, size: FlowsSize, stage: Stage) -> tuple[int, float, float, int, int]:
    """(favoriters reached, seconds, CPU seconds, messages sent, outbox rows) of the timed price-drop ingest."""
    engine = open_bench_engine(db_file, BENCH_START)
    try:
        setup = _favoriters(size.favoriters, _at(BENCH_START - dt.timedelta(hours=1)))
        _ingest_all(engine, setup, stage("favorites", len(setup)))
        progress = stage("price drop", size.favoriters)
        drop = {"type": "track", "event": "listing_price_changed", "userId": "seller-bench",
                "messageId": "bench-price-drop", "timestamp": _at(BENCH_START),
                "properties": {"listing_id": LISTING, "old_price": 4500, "new_price": 3600}}
        cpu0, start = time.process_time(), time.perf_counter()
        result = engine.ingest([drop])
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
        if result.accepted != 1:
            raise RuntimeError(f"the price drop was not accepted: {result.as_dict()}")
        with engine.store.transaction() as tx:
            reached = sum(n for (status, _), n in tx.runs.step_counts("price_drop").items())
            counts = tx.messages.counts()
            outbox = int(tx.conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar_one())
        progress(reached)
    finally:
        engine.close()
    return reached, seconds, cpu, int(counts.get("sent", 0)), outbox


def measure_carts(db_file: Path, size: FlowsSize, stage: Stage) -> tuple[int, float, float, int]:
    """(runs entered, seconds, CPU seconds, pushes in the ledger and outbox) of the timed clock advance."""
    span_us = 60_000_000
    first = BENCH_START + dt.timedelta(minutes=30)  # after Monday 09:00: no weekly digest falls in the advance
    engine = open_bench_engine(db_file, first + dt.timedelta(minutes=1, seconds=1))
    try:
        calls: list[dict[str, Any]] = []
        for i in range(size.carts):
            user = f"cart{i:07d}"
            at = first + dt.timedelta(microseconds=i * span_us // size.carts)
            calls.append({"type": "identify", "userId": user, "messageId": f"bench-cart-id-{i}", "timestamp": _at(at),
                          "traits": {"push_token": f"fcm:c{i:x}", "language": "th" if i % 7 else "en",
                                     "consent": {"push": True, "email": True, "in_app": True}}})
            calls.append({"type": "track", "event": "add_to_cart", "userId": user, "messageId": f"bench-cart-{i}",
                          "timestamp": at.isoformat(timespec="microseconds"),
                          "properties": {"listing_id": f"L-cart-{i % 500}", "title": "Fujifilm X100V",
                                         "price": 32000}})
        _ingest_all(engine, calls, stage("carts", len(calls)))
        progress = stage("cart timers", size.carts)
        cpu0, start = time.process_time(), time.perf_counter()
        engine.advance(first + dt.timedelta(hours=1, minutes=1, seconds=1))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
        with engine.store.transaction() as tx:
            entered = sum(n for _, n in tx.runs.step_counts("cart_abandonment").items())
            pushed = int(tx.conn.exec_driver_sql(
                "SELECT count(*) FROM outbox o JOIN messages m ON m.id = o.message_id "
                "WHERE m.flow_key = 'cart_abandonment' AND m.channel = 'push'").scalar_one())
        progress(entered)
    finally:
        engine.close()
    return entered, seconds, cpu, pushed


def measure_waiting(db_file: Path, size: FlowsSize, stage: Stage
                    ) -> tuple[int, float, float, float, list[float], int]:
    """(waiting runs, seconds watched, process and loop-thread CPU seconds, per-poll ms, timers fired)."""
    from growthengine.bootstrap import build_engine
    from growthengine.clock import RealClock
    from growthengine.settings import Settings

    now = RealClock().now().replace(microsecond=0)
    engine = open_bench_engine(db_file, now)
    try:
        at = _at(now)
        calls = [{"type": "track", "event": "seller_registered", "userId": f"seller{i:07d}",
                  "messageId": f"bench-seller-{i}", "timestamp": at, "properties": {}} for i in range(size.waiting)]
        _ingest_all(engine, calls, stage("sellers", len(calls)))
        with engine.store.transaction() as tx:
            waiting = sum(n for (status, _), n in tx.runs.step_counts("seller_coach").items() if status == "active")
    finally:
        engine.close()
    settings = Settings(db_url=f"sqlite:///{db_file}", data_dir=db_file.parent / f"{db_file.stem}-data",
                        clock="real", worker_interval_s=size.worker_interval_s)
    engine = build_engine(settings, clock=RealClock())
    progress = stage("idle worker", int(size.idle_seconds * 10))
    polls: list[float] = []
    fired = 0
    try:
        engine.run_due()  # anything left over from start-up (there should be nothing)
        cpu0, thread0, start = time.process_time(), time.thread_time(), time.perf_counter()
        while (elapsed := time.perf_counter() - start) < size.idle_seconds:
            poll = time.perf_counter()
            fired += engine.run_due()
            polls.append((time.perf_counter() - poll) * 1000)
            progress(int(min(elapsed + size.worker_interval_s, size.idle_seconds) * 10) - int(elapsed * 10))
            time.sleep(size.worker_interval_s)  # the worker's asyncio.sleep between passes
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
        loop_cpu = time.thread_time() - thread0
    finally:
        engine.close()
    return waiting, seconds, cpu, loop_cpu, polls, fired


PARTS = ("price-drop", "carts", "waiting")
"""The three measurements, by the names ``--only`` takes."""


def run_flows_bench(size: FlowsSize, db_dir: Path, stage: Stage, only: str | None = None) -> FlowsBench:
    """Every measurement, or ``only`` one of :data:`PARTS` (the others are reported as not measured: zeros)."""
    if only is not None and only not in PARTS:
        raise ValueError(f"unknown part {only!r} (one of {', '.join(PARTS)})")
    db_dir.mkdir(parents=True, exist_ok=True)
    for name in ("flows-fanout.db", "flows-carts.db", "flows-waiting.db"):
        for suffix in ("", "-wal", "-shm", "-journal"):
            (db_dir / f"{name}{suffix}").unlink(missing_ok=True)
    reached, seconds, cpu, sent, outbox = measure_fanout(db_dir / "flows-fanout.db", size, stage) \
        if only in (None, "price-drop") else (0, 0.0, 0.0, 0, 0)
    carts, cart_s, cart_cpu, pushed = measure_carts(db_dir / "flows-carts.db", size, stage) \
        if only in (None, "carts") else (0, 0.0, 0.0, 0)
    waiting, idle_s, idle_cpu, loop_cpu, polls, fired = measure_waiting(db_dir / "flows-waiting.db", size, stage) \
        if only in (None, "waiting") else (0, 0.0, 0.0, 0.0, [], 0)
    return FlowsBench(cart_users=carts, cart_seconds=cart_s, cart_cpu_s=cart_cpu, cart_pushed=pushed,
                      size=size, fanout_users=reached, fanout_seconds=seconds, fanout_cpu_s=cpu, sent=sent,
                      outbox=outbox, waiting_runs=waiting, idle_seconds=idle_s, idle_cpu_s=idle_cpu,
                      loop_cpu_s=loop_cpu, polls=len(polls), poll_ms=polls, fired_while_idle=fired)

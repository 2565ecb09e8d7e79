"""``growth bench segments``: the segment engine under load, on the embedded default (a SQLite file).

One engine wired by :func:`growthengine.bootstrap.build_engine` (the five default segments live, with the flows
they feed) on a manual clock, and five measurements in one run:

* **sustained ingestion**: ``Engine.ingest`` of the seeded marketplace stream (:mod:`growthengine.bench.workload`)
  in batches, against the bare append of the rows the engine stored (:func:`growthengine.bench.ingest.measure_bare`,
  on a fresh file, the same batch size), measured in the same run; in the same pass, the **segment stage
  throughput**: the events over the time the pipeline spent in the segment stage (its state, rules, writes and the
  flows and audiences its transitions feed), with how often a user's state was found in memory;
* **event-to-transition latency**: events arrive at a paced rate (5,000/s by default); each batch is ingested when
  its last event has arrived; a purchase that lifts a new user over the ``high_ltv`` threshold rides in every
  batch. Its latency runs from its arrival to the return of the ingest call that stored its ``enter`` transition
  (the transaction has committed by then), so it includes the wait for the batch to fill;
* **timers**: ``timers`` new users put an item in their cart now (a cart-abandoner timer each, due at T+1h); then
  ``Engine.advance`` by 61 minutes fires them (with every other timer due on the way) and the users enter
  ``cart_abandoners`` (and the cart flow sends its push); timers/s overall, and what the segment engine's own
  share of that time would allow;
* **rebuild**: ``Engine.rebuild_segments()`` of all five from the whole event log;
* **memory**: the peak resident set size of the process (``ru_maxrss``).

All but the bare append run under the cyclic garbage collector's set-up of ``growth worker``
(:func:`as_long_running_worker`), as the stage does in production. Time is measured with ``time.perf_counter``; the
engine itself never reads the wall clock.
"""

from __future__ import annotations

import datetime as dt
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from growthengine.bench.ingest import Advance, Measurement, measure_bare, time_stages
from growthengine.bench.workload import BENCH_START, stream_calls
from growthengine.engine import Engine
from growthengine.scheduler.runner import TimerBatch
from growthengine.segments.segment_pass import TIMER_KIND as SEGMENT_TIMER
from growthengine.storage.segment_store import Transition
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Tx

Stage = Callable[[str, int], Advance]

TARGET_INGEST_RATE = 25_000.0
TARGET_STAGE_RATE = 25_000.0
TARGET_P99_MS = 100.0
TARGET_TIMER_RATE = 50_000.0
TARGET_REBUILD_S = 60.0
TARGET_RSS_MB = 4096.0
TARGET_USERS = 1_000_000
TARGET_EVENTS = 10_000_000


@dataclass(frozen=True)
class SegmentsSize:
    users: int = 100_000
    events: int = 1_000_000
    batch: int = 500
    paced_rate: float = 5_000.0
    paced_seconds: float = 5.0
    paced_batch: int = 50
    baseline_rows: int = 300_000
    """The bare append runs on the first rows the engine stored (the rate per row does not depend on the total)."""
    timers: int = 20_000
    """Users who put an item in their cart just now: a cart-abandoner timer each, due in an hour."""
    span: dt.timedelta = dt.timedelta(hours=6)
    seed: int = 7


@dataclass
class SegmentsBench:
    size: SegmentsSize
    ingest: Measurement
    bare: Measurement
    latencies_ms: list[float]
    paced_events: int
    paced_seconds: float
    timers: Measurement
    segment_timer_s: float
    rebuild: Measurement
    rss_mb: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.ingest.rate / self.bare.rate if self.bare.rate else 0.0

    @property
    def stage_rate(self) -> float:
        """Events/s through the segment stage (its consumer's time in the ingestion pass, flows fed included)."""
        seconds = float(self.ingest.details.get("listener_s", {}).get("SegmentEngine", 0.0))
        return self.ingest.events / seconds if seconds else 0.0

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def achieved_rate(self) -> float:
        return self.paced_events / self.paced_seconds if self.paced_seconds else 0.0

    @property
    def segment_timer_rate(self) -> float:
        """Segment timers/s the segment engine alone would allow (its handler's time, less the flows it feeds)."""
        fired = int(self.timers.details.get("segment_timers", 0))
        return fired / self.segment_timer_s if self.segment_timer_s else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def peak_rss_mb() -> float:
    """The process's peak resident set size (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def as_long_running_worker() -> Iterator[None]:
    """The cyclic garbage collector set up as ``growth serve`` and ``growth worker`` set it once their engine is
    built (``scheduler/collector.py``: start-up frozen, young passes every 20,000 objects, what each group of work
    leaves alive frozen at its end), and put back as it was afterwards (the bench may run inside another process)."""
    from growthengine.scheduler.collector import settle_long_running_process, unsettle

    settle_long_running_process()
    try:
        yield
    finally:
        unsettle()


def open_bench_engine(db_file: Path, now: dt.datetime) -> Engine:
    """The embedded default, wired as ``growth serve`` wires it, on a manual clock at ``now``."""
    from growthengine.bootstrap import build_engine
    from growthengine.clock import ManualClock
    from growthengine.settings import Settings

    settings = Settings(db_url=f"sqlite:///{db_file}", data_dir=db_file.parent / f"{db_file.stem}-data",
                        clock="manual", clock_start=now)
    return build_engine(settings, clock=ManualClock(now))


# (a) sustained ingestion -------------------------------------------------------------------------------


def _chunks(calls: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(islice(calls, size)):
        yield chunk


def measure_ingest(engine: Engine, size: SegmentsSize, progress: Advance) -> Measurement:
    """``Engine.ingest`` of the seeded stream, ``size.batch`` calls a batch (the calls are made outside the timing)."""
    stages = list(engine.pipeline.stages)
    timed = time_stages(engine)
    calls = stream_calls(size.events, users=size.users, seed=size.seed, now=BENCH_START, span=size.span)
    accepted = 0
    seconds = cpu = 0.0
    for batch in _chunks(calls, size.batch):
        cpu0, start = time.process_time(), time.perf_counter()
        accepted += engine.ingest(batch).accepted
        seconds += time.perf_counter() - start
        cpu += time.process_time() - cpu0
        progress(len(batch))
    engine.pipeline.stages = stages
    listener_s: dict[str, float] = {}
    for t in timed:
        name = type(t.inner).__name__
        listener_s[name] = listener_s.get(name, 0.0) + t.seconds
    cache = engine.segments.cache
    looked = cache.hits + cache.misses
    return Measurement("Engine.ingest", accepted, seconds, cpu,
                       {"listener_s": listener_s, "state_hit_share": cache.hits / looked if looked else 0.0})


def measure_baseline(engine: Engine, size: SegmentsSize, db_file: Path, progress: Advance) -> Measurement:
    """The bare append of (the first ``size.baseline_rows`` of) the rows the engine stored, same batch size."""
    from growthengine.bench.ingest import _EVENT_COLUMNS

    with engine.store.engine.connect() as conn:
        query = f"SELECT {_EVENT_COLUMNS} FROM events ORDER BY id LIMIT {int(size.baseline_rows)}"  # noqa: S608
        rows = [tuple(r) for r in conn.exec_driver_sql(query)]
    return measure_bare(rows, db_file, progress=progress, batch=size.batch)


# (b) event-to-transition latency -----------------------------------------------------------------------


def measure_latency(engine: Engine, size: SegmentsSize, progress: Advance) -> tuple[list[float], int, float]:
    """Paced arrivals; the latency of every purchase that makes a new user enter ``high_ltv``.

    Returns the latencies (ms), the events ingested and the seconds it took.
    """
    total = int(size.paced_rate * size.paced_seconds)
    background = stream_calls(total, users=size.users, seed=size.seed + 1, now=BENCH_START, span=size.span)
    at = BENCH_START.isoformat(timespec="milliseconds")
    latencies: list[float] = []
    done = 0
    start = time.perf_counter()
    batch_no = 0
    while done < total:
        count = min(size.paced_batch, total - done)
        batch = list(islice(background, count - 1))
        marker_index = len(batch)
        batch.append({"type": "track", "event": "purchase", "userId": f"ltv{batch_no:07d}", "timestamp": at,
                      "messageId": f"bench-ltv-{batch_no}",
                      "properties": {"order_id": f"O-ltv-{batch_no}", "amount": 6000.0, "listing_ids": ["L1"]}})
        # Event i arrives at start + i / rate; the batch goes when its last event has arrived.
        arrivals = [start + (done + i) / size.paced_rate for i in range(len(batch))]
        wait = arrivals[-1] - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        engine.ingest(batch)
        latencies.append((time.perf_counter() - arrivals[marker_index]) * 1000)
        done += len(batch)
        batch_no += 1
        progress(len(batch))
    seconds = time.perf_counter() - start
    with engine.store.transaction() as tx:
        entered = sum(1 for t in tx.segments.transitions(segment="high_ltv", limit=10_000_000)
                      if t.kind == "enter" and t.user_id.startswith("ltv"))
    if entered != batch_no:
        raise RuntimeError(f"{batch_no} purchases should have entered high_ltv, {entered} did")
    return latencies, done, seconds


# (c) timers --------------------------------------------------------------------------------------------


class _TimedTransitions:
    def __init__(self, inner: Any, clock: list[float]) -> None:
        self.inner = inner
        self.clock = clock

    def on_transitions(self, tx: Tx, transitions: list[Transition]) -> None:
        start = time.perf_counter()
        try:
            self.inner.on_transitions(tx, transitions)
        finally:
            self.clock[0] += time.perf_counter() - start


class TimedBatch:
    """A scheduler's deferred batch with the time of its deferred work counted (``before_fire``, ``after_fire`` and
    ``close_batch``: where it does what it deferred)."""

    def __init__(self, inner: TimerBatch, clock: list[float]) -> None:
        self.inner = inner
        self.clock = clock

    def open_batch(self) -> None:
        self.inner.open_batch()

    def batch_mark(self) -> int:
        return self.inner.batch_mark()

    def batch_rollback(self, mark: int) -> None:
        self.inner.batch_rollback(mark)

    @contextmanager
    def _timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.clock[0] += time.perf_counter() - start

    def before_fire(self, tx: Tx, timers: Sequence[Timer]) -> None:
        with self._timed():
            self.inner.before_fire(tx, timers)

    def after_fire(self, tx: Tx) -> None:
        with self._timed():
            self.inner.after_fire(tx)

    def close_batch(self, tx: Tx) -> None:
        with self._timed():
            self.inner.close_batch(tx)


def add_carts(engine: Engine, size: SegmentsSize, progress: Advance) -> None:
    at = engine.clock.now().isoformat(timespec="milliseconds")
    for start in range(0, size.timers, size.batch):
        batch = [{"type": "track", "event": "add_to_cart", "userId": f"cart{i:07d}", "messageId": f"bench-cart-{i}",
                  "timestamp": at, "properties": {"listing_id": f"LC{i:07d}", "title": "เสื้อยืดวินเทจ 90s",
                                                  "price": 290, "stock": 1}}
                 for i in range(start, min(size.timers, start + size.batch))]
        engine.ingest(batch)
        progress(len(batch))


def measure_timers(engine: Engine, progress: Advance) -> tuple[Measurement, float]:
    """Advance the clock by 61 minutes, firing every timer on the way; also the segment handler's own time."""
    with engine.store.transaction() as tx:
        pending = tx.timers.count()
    segments = engine.segments
    listeners_s = [0.0]
    handler_s = [0.0]
    fired_segment = [0]
    inner_listeners = segments.listeners
    segments.listeners = [_TimedTransitions(listener, listeners_s) for listener in inner_listeners]

    def timed_handler(tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        begin = time.perf_counter()
        try:
            segments.on_timers(tx, timers, due)
        finally:
            handler_s[0] += time.perf_counter() - begin
        fired_segment[0] += len(timers)
        progress(len(timers))

    engine.scheduler.register(SEGMENT_TIMER, timed_handler)
    # The segment stage's writes are deferred to each group's end: counted in its handler's time.
    batches = engine.scheduler.batches
    engine.scheduler.batches = [TimedBatch(b, handler_s) if b is segments.timer_group else b for b in batches]
    try:
        target = engine.clock.now() + dt.timedelta(minutes=61)
        cpu0, start = time.process_time(), time.perf_counter()
        fired = engine.advance(target)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    finally:
        engine.scheduler.register(SEGMENT_TIMER, segments.on_timers)
        engine.scheduler.batches = batches
        segments.listeners = inner_listeners
    with engine.store.transaction() as tx:
        left = tx.timers.count()
    details = {"pending_before": pending, "pending_after": left, "listeners_s": listeners_s[0],
               "segment_handler_s": handler_s[0], "segment_timers": fired_segment[0]}
    return Measurement("timers fired (Engine.advance)", fired, seconds, cpu, details), handler_s[0] - listeners_s[0]


# (d) rebuild -------------------------------------------------------------------------------------------


def measure_rebuild(engine: Engine, progress: Advance) -> Measurement:
    cpu0, start = time.process_time(), time.perf_counter()
    result = engine.rebuild_segments(progress=progress)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    details = {"users": result.users, "entered": result.entered, "exited": result.exited}
    return Measurement("rebuild of all five", result.events, seconds, cpu, details)


# All of them -------------------------------------------------------------------------------------------


def run_segments_bench(size: SegmentsSize, db_dir: Path, stage: Stage) -> SegmentsBench:
    """The five measurements, on fresh files under ``db_dir``."""
    db_dir.mkdir(parents=True, exist_ok=True)
    for name in ("segments.db", "segments-bare.db"):
        for suffix in ("", "-wal", "-shm", "-journal"):
            (db_dir / f"{name}{suffix}").unlink(missing_ok=True)
    # A minute after the workload's last instant: the weekly digest (Mondays 09:00) stays out of the timers.
    engine = open_bench_engine(db_dir / "segments.db", BENCH_START + dt.timedelta(minutes=1))
    try:
        with as_long_running_worker():  # as growth worker runs the stage
            ingest = measure_ingest(engine, size, stage("ingest", size.events))
            with engine.store.transaction() as tx:
                counts = {"profiles": tx.profiles.count(), "events": tx.events.count(),
                          "segment timers": tx.timers.count(SEGMENT_TIMER), "timers": tx.timers.count()}
                counts.update({f"members {k}": v for k, v in tx.segments.sizes().items()})
            paced = int(size.paced_rate * size.paced_seconds)
            latencies, paced_events, paced_s = measure_latency(engine, size, stage("paced 5k/s", paced))
            add_carts(engine, size, stage("carts", size.timers))
            timers, segment_s = measure_timers(engine, stage("segment timers", size.timers))
            with engine.store.transaction() as tx:
                events = tx.events.count()
            rebuild = measure_rebuild(engine, stage("rebuild", events))
            rss = peak_rss_mb()
        rows = min(size.baseline_rows, counts["events"])
        bare = measure_baseline(engine, size, db_dir / "segments-bare.db", stage("bare append", rows))
    finally:
        engine.close()
    return SegmentsBench(size=size, ingest=ingest, bare=bare, latencies_ms=latencies, paced_events=paced_events,
                         paced_seconds=paced_s, timers=timers, segment_timer_s=segment_s, rebuild=rebuild,
                         rss_mb=rss, counts=counts)

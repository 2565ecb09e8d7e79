"""``growth bench segments --memory``: peak resident memory with the segment state of N users, the stage live.

One engine wired by :func:`growthengine.bootstrap.build_engine` (the five default segments live, with the flows
they feed) on a SQLite file and a manual clock ingests a stream in which **every one of the N users has events**:
every other call is a user's first (``u000000``, ``u000001``, ... in turn, until all N have come), the calls between
are the seeded marketplace stream (:mod:`growthengine.bench.workload`, skewed: a few users very active). So every
user ends with stored segment state, and the engine holds what its state cache holds (the most recently used
``cache_users``, 200,000 by default; the others were evicted and are read back from the database when their events
come). The figure is the process's peak resident set size (``VmHWM`` in ``/proc/self/status``; ``ru_maxrss`` where
there is no ``/proc``), with the states held, the users with stored state and the events ingested. The resident set
at the end is split into anonymous memory (the Python heap and SQLite's page cache) and file pages (SQLite maps up
to ``mmap_size``, 1 GiB, of its file: pages the kernel shares and can reclaim, counted in the peak all the same).
"""

from __future__ import annotations

import datetime as dt
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from growthengine.bench.ingest import Advance
from growthengine.bench.segments import open_bench_engine
from growthengine.bench.workload import BENCH_START, stream_calls

TARGET_RSS_MB = 4096.0
TARGET_USERS = 1_000_000


@dataclass(frozen=True)
class MemorySize:
    users: int = 1_000_000
    events: int = 2_000_000
    """At least ``users``: the first touch of every user, and the stream between them."""
    batch: int = 500
    span: dt.timedelta = dt.timedelta(hours=6)
    seed: int = 7


@dataclass
class SegmentMemory:
    size: MemorySize
    events: int
    """Events accepted."""
    users_with_state: int
    """Rows in ``segment_state`` at the end (every user with an event has one)."""
    held: int
    """States held in memory at the end (the cache's bound, when there are more users than it keeps)."""
    capacity: int
    peak_rss_mb: float
    rss_mb: float
    """Resident set size at the end."""
    anon_mb: float
    """Of which anonymous memory (the Python heap, SQLite's page cache) at the end."""
    file_mb: float
    """Of which file pages mapped (SQLite maps up to ``mmap_size`` of its file; shared, reclaimable) at the end."""
    seconds: float
    hit_share: float


def _status_mb(field: str) -> float | None:
    """A ``kB`` figure of ``/proc/self/status`` in MiB (``None`` where there is none)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """The process's peak resident set size (``VmHWM``; Linux's ``ru_maxrss`` is the same figure in KiB)."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def every_user_calls(size: MemorySize) -> Iterator[dict[str, Any]]:
    """``size.events`` calls in which each of the ``size.users`` users has at least one event."""
    stream = stream_calls(size.events, users=size.users, seed=size.seed, now=BENCH_START, span=size.span)
    spread = max(1, size.events // size.users)
    first = 0
    for index, call in enumerate(stream):
        if first < size.users and (index % spread == 0 or size.events - index <= size.users - first):
            call.pop("anonymousId", None)
            call["userId"] = f"u{first:06d}"
            if call.get("type") not in ("track", "page", "screen"):  # an identify: a view of a listing instead
                call.pop("traits", None)
                call.update(type="track", event="item_viewed",
                            properties={"listing_id": f"L{first % 500_000:07d}", "price": 290})
            first += 1
        yield call


def _chunks(calls: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(islice(calls, size)):
        yield chunk


def run_memory_bench(size: MemorySize, db_dir: Path, stage: Callable[[str, int], Advance]) -> SegmentMemory:
    """Ingest the stream on a fresh file and measure the peak resident memory."""
    if size.events < size.users:
        raise ValueError("events must be at least users (every user has one)")
    db_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        (db_dir / f"memory.db{suffix}").unlink(missing_ok=True)
    engine = open_bench_engine(db_dir / "memory.db", BENCH_START + dt.timedelta(minutes=1))
    try:
        progress = stage("ingest", size.events)
        accepted = 0
        begin = time.perf_counter()
        for batch in _chunks(every_user_calls(size), size.batch):
            accepted += engine.ingest(batch).accepted
            progress(len(batch))
        seconds = time.perf_counter() - begin
        cache = engine.segments.cache
        looked = cache.hits + cache.misses
        with engine.store.engine.connect() as conn:
            stored = int(conn.exec_driver_sql("SELECT count(*) FROM segment_state").scalar_one())
        held, capacity = len(cache), cache.capacity
        rss = _status_mb("VmRSS") or 0.0
        anon, mapped = _status_mb("RssAnon") or 0.0, _status_mb("RssFile") or 0.0
        peak = peak_rss_mb()
    finally:
        engine.close()
    return SegmentMemory(size=size, events=accepted, users_with_state=stored, held=held, capacity=capacity,
                         peak_rss_mb=peak, rss_mb=rss, anon_mb=anon, file_mb=mapped, seconds=seconds,
                         hit_share=cache.hits / looked if looked else 0.0)

"""``growth bench import``: how fast ``growth import`` loads a history, stored and then applied.

A JSON Lines file of Segment-spec track and identify calls (``users`` users over the 60 days before the engine's
time, the tracking plan's events with their properties, one bad line every 10,000: not JSON, or a track call without
its event) is imported into a fresh SQLite database, as ``growth import`` does it, in two parts timed apart:

* **stored**: :func:`growthengine.ingest.history.import_history` (every line validated as ingestion does,
  deduplicated by ``messageId``, identities and profiles settled, appended to the log), as when a running worker
  applies the history (the CLI's path when SQLite's worker lock is held, or on PostgreSQL);
* **applied**: the pipeline's stages over the stored history (``Pipeline.drain``: segments, flows, consent,
  engagement, analytics), which ``growth import`` runs itself on SQLite when no worker runs.

Then the same file again: every good line must be a duplicate (idempotency), and the bad lines must be reported by
their numbers. All three run as ``growth import`` runs when it applies the stages itself: its collector set up as
``growth worker``'s (storing alone measured the same with Python's own set-up) and
:data:`~growthengine.ingest.history.BULK_BATCH_LINES` lines a transaction (benchmarks/README.md, "Import"). Time is
measured with ``time.perf_counter`` (and ``time.process_time`` for the CPU); nothing in the engine reads the wall
clock.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from growthengine.bench.ingest import BenchError, Measurement
from growthengine.bench.segments import as_long_running_worker
from growthengine.ingest.history import BULK_BATCH_LINES, ImportReport, import_history

Stage = Callable[[str, int], Callable[[int], None]]
TARGET_RATE = 25_000.0
"""events/s stored by ``growth import`` (issue 11)."""
BAD_EVERY = 10_000
_NAMES = (("item_viewed", 40), ("app_opened", 10), ("location_searched", 10), ("add_to_cart", 9),
          ("remove_from_cart", 2), ("purchase", 6), ("item_sold", 5), ("favorite_added", 6))
PROVINCES = ("กรุงเทพมหานคร", "เชียงใหม่", "ขอนแก่น", "ภูเก็ต", "ชลบุรี")


@dataclass
class ImportBench:
    events: int
    users: int
    stored: Measurement
    applied: Measurement
    again: Measurement
    bad: list[int] = field(default_factory=list)
    """The line numbers reported bad (the file has one every BAD_EVERY lines)."""


def write_history(path: Path, events: int, users: int, end: dt.datetime, seed: int = 7) -> list[int]:
    """The history file; returns the numbers of its bad lines."""
    rng = random.Random(seed)
    kinds, weights = [k for k, _ in _NAMES], [w for _, w in _NAMES]
    bad: list[int] = []
    span_s = 60 * 86_400
    with path.open("wb") as out:
        for i in range(1, events + 1):
            if i % BAD_EVERY == 0:
                bad.append(i)
                out.write(b'{"type": "track", "userId": "u1"\n' if i % (2 * BAD_EVERY) else
                          b'{"type": "track", "userId": "u1", "properties": {}}\n')
                continue
            user = f"u{int(users * rng.random() ** 2):07d}"
            at = (end - dt.timedelta(seconds=rng.randrange(span_s))).isoformat()
            call: dict[str, Any]
            if rng.random() < 0.03:
                call = {"type": "identify", "userId": user, "timestamp": at, "messageId": f"h{i}",
                        "traits": {"language": rng.choice(("th", "en")), "timezone": "Asia/Bangkok"}}
            else:
                kind = rng.choices(kinds, weights)[0]
                listing = f"L{rng.randrange(1, 5_000):05d}"
                props: dict[str, Any] = {"listing_id": listing, "title": "Fuji X100V", "price": 32000}
                if kind == "location_searched":
                    props = {"province": rng.choice(PROVINCES)}
                elif kind == "purchase":
                    props = {"order_id": f"O{i}", "amount": float(rng.choice((290, 990, 2900))),
                             "listing_ids": [listing]}
                elif kind == "app_opened":
                    props = {}
                call = {"type": "track", "userId": user, "event": kind, "properties": props, "timestamp": at,
                        "messageId": f"h{i}"}
            out.write(orjson.dumps(call) + b"\n")
    return bad


def _timed(name: str, events: int, run: Callable[[], Any]) -> tuple[Measurement, Any]:
    cpu0, start = time.process_time(), time.perf_counter()
    result = run()
    return Measurement(name, events, time.perf_counter() - start, time.process_time() - cpu0), result


def run_import_bench(events: int, users: int, db_dir: Path, stage: Stage, seed: int = 7) -> ImportBench:
    from growthengine.bootstrap import build_command_engine
    from growthengine.settings import Settings

    db_dir.mkdir(parents=True, exist_ok=True)
    db = db_dir / "import.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    engine = build_command_engine(Settings(db_url=f"sqlite:///{db}", data_dir=db_dir / "data"))
    try:
        history = db_dir / "history.jsonl"
        done = stage("write file", events)
        expected_bad = write_history(history, events, users, engine.clock.now(), seed)
        done(events)
        good = events - len(expected_bad)
        with as_long_running_worker():  # the collector as `growth import` sets it up when it applies the stages
            done = stage("store", history.stat().st_size)
            stored, report = _timed("stored", good, lambda: import_history(
                engine.ingestion, history, progress=done, batch_lines=BULK_BATCH_LINES))
            assert isinstance(report, ImportReport)
            done = stage("apply", 1)
            applied, _ = _timed("applied (pipeline stages)", good, engine.pipeline.drain)
            done(1)
            done = stage("again", history.stat().st_size)
            again, repeat = _timed("again (all duplicates)", good, lambda: import_history(
                engine.ingestion, history, progress=done, batch_lines=BULK_BATCH_LINES))
            assert isinstance(repeat, ImportReport)
    finally:
        engine.close()
    bad = [line for line, _ in report.problems]
    if report.accepted != good or bad != expected_bad:
        raise BenchError(f"stored {report.accepted:,} of {good:,} good lines; bad lines reported {bad[:5]}..., "
                         f"expected {expected_bad[:5]}...")
    if repeat.accepted or repeat.duplicates != good:
        raise BenchError(f"the second import stored {repeat.accepted:,} lines again (expected none)")
    return ImportBench(events, users, stored, applied, again, bad)

"""``growth import``: a JSON Lines file of Segment-spec calls loaded as history (CONTRACT.md 8).

Every line goes through the normal ingest validation and is stored in the log like any call, idempotent by its
``messageId`` (a line without one gets one from its content, so importing a file twice stores it once). A bad line
is reported by its number and skipped; the rest are kept. The calls are stored with ``origin="import"``: they build
segment state and memberships, but their transitions and events start no flow (unless ``start_flows``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from growthengine.domain.calls import InvalidCall, parse_call
from growthengine.ingest.service import IngestionService
from growthengine.scheduler.collector import collector_paused

BATCH_LINES = 5000
"""Lines stored a transaction beside a running engine on SQLite, whose ingestion waits for the write lock meanwhile
(an import is a bulk load: fewer, larger commits than a request's; a bad line is still rejected alone)."""
BULK_BATCH_LINES = 20_000
"""Lines stored a transaction when nothing else writes meanwhile (``growth import`` applying the stages itself, with
SQLite's worker lock) or on PostgreSQL. The log's and the profiles' indexes are keyed by random ids, so each commit
rewrites most of their leaf pages whatever its size: at 1,000,000 lines, 20,000 a transaction stored 21-28 % more
lines a second than 5,000 (no gain at 200,000; 50,000 no better than 20,000; benchmarks/README.md "Import")."""
PROGRESS_BYTES = 1 << 20  # the progress bar moves a megabyte at a time (not once a line)
MAX_REPORTED = 1000  # bad lines kept for the report (all are counted)

Progress = Callable[[int], None]  # bytes read since the last call
AfterBatch = Callable[[], object]  # applies what a stored batch causes (drains the stages when this process may)


@dataclass
class ImportReport:
    lines: int = 0  # non-blank lines read
    accepted: int = 0
    duplicates: int = 0
    bad: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line number, why), the first MAX_REPORTED

    def reject(self, line: int, why: str) -> None:
        self.bad += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append((line, why))


def _lines(path: Path, progress: Progress | None) -> Iterator[tuple[int, Any]]:
    """(line number, decoded call or an :class:`InvalidCall`) for every non-blank line."""
    unreported = 0
    with path.open("rb", buffering=PROGRESS_BYTES) as handle:
        for number, raw in enumerate(handle, start=1):
            unreported += len(raw)
            if progress is not None and unreported >= PROGRESS_BYTES:
                progress(unreported)
                unreported = 0
            text = raw.strip()
            if not text:
                continue
            try:
                call = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                yield number, InvalidCall(f"not JSON ({exc.msg}, at column {exc.colno})")
                continue
            if isinstance(call, dict) and not call.get("messageId"):
                # Idempotent without a messageId too: the same line is the same call.
                digest = hashlib.sha256(text, usedforsecurity=False).hexdigest()[:32]
                call["messageId"] = f"import-{digest}"
            yield number, call
    if progress is not None and unreported:
        progress(unreported)


def _batches(path: Path, report: ImportReport, progress: Progress | None, size: int | None = None,
             ) -> Iterator[tuple[list[int], list[Any]]]:
    """The good lines ``size`` at a time (:data:`BATCH_LINES` when not given); the bad ones go to ``report``."""
    limit = size or BATCH_LINES
    numbers: list[int] = []
    calls: list[Any] = []
    for number, call in _lines(path, progress):
        report.lines += 1
        if isinstance(call, InvalidCall):
            report.reject(number, str(call))
            continue
        numbers.append(number)
        calls.append(call)
        if len(calls) >= limit:
            yield numbers, calls
            numbers, calls = [], []
    if calls:
        yield numbers, calls


def _collector_off_each(batches: Iterator[tuple[list[int], list[Any]]],
                        ) -> Iterator[tuple[list[int], list[Any]]]:
    """Each batch read and handled with Python's cyclic collector held off (``scheduler/collector.py``), on again
    between batches.

    A batch's thousands of decoded calls are alive while it is read and stored: with the collector on, their
    allocations set off its passes, which promoted them and walked the whole heap again and again (a quarter of the
    CPU time of storing 200,000 lines, ``benchmarks/README.md`` "Import"). They are acyclic and freed by reference
    counting once the batch is done; the passes that run between batches find what little else there is."""
    while True:
        with collector_paused():
            batch = next(batches, None)
            if batch is None:
                return
            yield batch


def import_history(ingestion: IngestionService, path: Path, *, start_flows: bool = False,
                   progress: Progress | None = None, after_batch: AfterBatch | None = None,
                   batch_lines: int | None = None) -> ImportReport:
    """Store every good line of ``path`` in the log, ``batch_lines`` a transaction (:data:`BATCH_LINES` when not
    given); report the bad ones by line number."""
    report = ImportReport()
    origin = None if start_flows else "import"
    for numbers, calls in _collector_off_each(_batches(path, report, progress, batch_lines)):
        result = ingestion.ingest(calls, origin=origin)
        report.accepted += result.accepted
        report.duplicates += result.duplicates
        for rejection in result.rejected:
            report.reject(numbers[rejection.index], rejection.error)
        if after_batch is not None:
            after_batch()
    report.problems.sort()
    return report


def check_history(path: Path, now: dt.datetime, future_tolerance: dt.timedelta,
                  progress: Progress | None = None) -> ImportReport:
    """A dry run: validate every line as ingestion would, store nothing (``accepted`` counts the good lines)."""
    report = ImportReport()
    for numbers, calls in _collector_off_each(_batches(path, report, progress)):
        for number, call in zip(numbers, calls, strict=True):
            try:
                parse_call(call, now=now, future_tolerance=future_tolerance)
            except InvalidCall as exc:
                report.reject(number, str(exc))
            else:
                report.accepted += 1
    report.problems.sort()
    return report

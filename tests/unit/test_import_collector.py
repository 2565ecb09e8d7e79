"""``growth import`` stores each batch with Python's cyclic collector held off, and has it on between batches and
afterwards (``ingest/history.py``): with it on, a batch's thousands of decoded calls set off its passes again and
again (a quarter of the CPU of storing 200,000 lines, benchmarks/README.md "Import")."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from growthengine.bootstrap import build_command_engine
from growthengine.domain.calls import Call, parse_call
from growthengine.engine import Engine
from growthengine.ingest import history
from growthengine.settings import Settings


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = build_command_engine(Settings(db_url=f"sqlite:///{tmp_path / 'import.db'}", data_dir=tmp_path / "data"))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def collector_on() -> Iterator[None]:
    """The collector on, with a young pass owed at every new object (so any moment it is on, it runs)."""
    was_enabled, thresholds = gc.isenabled(), gc.get_threshold()
    gc.enable()
    gc.set_threshold(1)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not was_enabled:
            gc.disable()


def _file(tmp_path: Path, lines: int) -> Path:
    path = tmp_path / "history.jsonl"
    calls = [{"type": "track", "userId": f"u{i % 3}", "event": "app_opened", "messageId": f"m{i}",
              "timestamp": "2026-11-01T09:00:00+07:00"} for i in range(lines)]
    rows = [orjson.dumps(c) for c in calls]
    rows.insert(4, b"not json")  # line 5
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


def test_each_batch_is_stored_with_the_collector_off_and_it_runs_between_batches(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collector_on: None) -> None:
    monkeypatch.setattr(history, "BATCH_LINES", 3)
    path = _file(tmp_path, 10)
    during: list[bool] = []
    passes: list[str] = []

    def on_pass(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append("pass")

    gc.callbacks.append(on_pass)
    try:
        report = history.import_history(engine.ingestion, path, after_batch=lambda: during.append(gc.isenabled()))
    finally:
        gc.callbacks.remove(on_pass)
    assert (report.accepted, report.bad, [n for n, _ in report.problems]) == (10, 1, [5])
    assert during == [False, False, False, False]  # 10 good lines, 3 a batch: every batch stored with it off
    assert passes, "the collector never ran during the import: it was off between batches too"
    assert gc.isenabled()


def test_the_collector_is_on_again_when_a_batch_fails(engine: Engine, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, collector_on: None) -> None:
    monkeypatch.setattr(history, "BATCH_LINES", 3)

    def fail() -> None:
        raise RuntimeError("the stages could not apply the batch")

    with pytest.raises(RuntimeError, match="could not apply"):
        history.import_history(engine.ingestion, _file(tmp_path, 10), after_batch=fail)
    assert gc.isenabled()


def test_a_dry_run_checks_each_batch_with_the_collector_off_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                collector_on: None) -> None:
    monkeypatch.setattr(history, "BATCH_LINES", 3)
    seen: list[bool] = []

    def parse(*args: Any, **kwargs: Any) -> Call:
        seen.append(gc.isenabled())
        return parse_call(*args, **kwargs)

    monkeypatch.setattr("growthengine.ingest.history.parse_call", parse)
    report = history.check_history(_file(tmp_path, 7), dt.datetime(2026, 12, 1, tzinfo=dt.UTC), dt.timedelta(minutes=5))
    assert (report.accepted, report.bad) == (7, 1)
    assert seen == [False] * 7
    assert gc.isenabled()

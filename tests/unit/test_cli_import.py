"""``growth import FILE`` (CONTRACT.md 8): JSON Lines history through the normal ingest validation, idempotent by
messageId, bad lines reported by number and skipped; history builds state and memberships but starts no flow unless
``--start-flows``. The database was written by an engine on the manual clock, so the import runs at its time."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from growthengine.bootstrap import build_command_engine
from growthengine.cli.app import app
from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.ingest.history import BATCH_LINES, BULK_BATCH_LINES, ImportReport, import_history
from growthengine.pipeline.worker_lock import WorkerLock, sqlite_lock_path
from growthengine.scheduler import collector
from growthengine.settings import Settings
from tests.conftest import START, make_engine

CONSENT = {"push": True, "email": True, "in_app": True}


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    """An import that applies the stages sets the collector up as ``growth worker`` does: put back afterwards, for
    the tests that run after these in this process."""
    yield
    collector.unsettle()


def _at(minutes_ago: int) -> str:
    return (START - dt.timedelta(minutes=minutes_ago)).isoformat()


def _history(tmp_path: Path) -> Path:
    lines: list[Any] = [
        {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.test", "push_token": "t1",
                                                        "consent": CONSENT}, "timestamp": _at(600)},
        # Abandoned 90 minutes ago: the hour ran out 30 minutes ago, fresh enough to start the nudge if it were live.
        {"type": "track", "userId": "u1", "event": "add_to_cart", "timestamp": _at(90), "messageId": "h-cart",
         "properties": {"listing_id": "L1", "title": "Leica M6", "price": 90000, "stock": 1}},
        "this is not json",
        {"type": "track", "userId": "u2", "event": "purchase", "timestamp": _at(30),
         "properties": {"order_id": "O1", "amount": 6000, "listing_ids": ["L9"]}},
        {"type": "track", "event": "add_to_cart", "properties": {}},  # no user
        {"type": "identify", "userId": "s1", "traits": {"email": "s1@example.test", "consent": CONSENT,
                                                        "is_seller": True}, "timestamp": _at(6000)},
        {"type": "track", "userId": "s1", "event": "seller_registered", "timestamp": _at(5 * 24 * 60)},
        # 21 views in the last 7 days: a window shopper at the next hourly refresh.
        *[{"type": "track", "userId": "w1", "event": "item_viewed", "timestamp": _at(100 + i),
           "properties": {"listing_id": f"L{i}", "category": "bags", "price": 500}} for i in range(21)],
    ]
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(line.encode() if isinstance(line, str) else orjson.dumps(line) for line in lines)
                     + b"\n\n")
    return path


def _manual_database(url: str, tmp_path: Path) -> None:
    make_engine(url, ManualClock(START), tmp_path).close()


def _import(*args: str) -> Result:
    return CliRunner().invoke(app, ["import", *args])


def _engine(url: str, tmp_path: Path) -> Engine:
    return build_command_engine(Settings(db_url=url, data_dir=tmp_path / "data"))


def test_import_builds_memberships_and_starts_no_flow(sqlite_url: str, tmp_path: Path) -> None:
    _manual_database(sqlite_url, tmp_path)
    history = _history(tmp_path)
    result = _import(str(history), "--db", sqlite_url)
    assert result.exit_code == 0, "bad lines are reported and skipped; the rest is kept"
    assert "line 3: not JSON" in result.output and "line 5:" in result.output, result.output
    assert "28 lines: 26 stored, 0 duplicates, 2 bad (skipped)" in result.output, result.output
    engine = _engine(sqlite_url, tmp_path)
    try:
        assert engine.clock.now() == START
        assert "cart_abandoners" in (engine.user_view("u1") or {})["segments"]
        assert "high_ltv" in (engine.user_view("u2") or {})["segments"]
        with engine.store.transaction() as tx:
            [entry] = tx.segments.transitions(user_id="u1", segment="cart_abandoners")
            assert tx.runs.ever_entered("seller_coach", ["s1"]) == set(), "an imported event starts no flow either"
        assert (entry.origin, entry.reason.split(":")[0]) == ("import", "import")
        assert engine.messages(limit=100) == []
        # The hourly refresh applies what the import found: an entry of the import's, which starts nothing.
        assert "window_shoppers" not in (engine.user_view("w1") or {})["segments"]
        engine.advance(START + dt.timedelta(hours=1))
        assert "window_shoppers" in (engine.user_view("w1") or {})["segments"]
        with engine.store.transaction() as tx:
            [shopper] = tx.segments.transitions(user_id="w1", segment="window_shoppers")
            assert tx.runs.ever_entered("first_buy_nudge", ["w1"]) == set()
        assert shopper.origin == "import"
        assert engine.messages(limit=100) == []
    finally:
        engine.close()
    again = _import(str(history), "--db", sqlite_url)
    assert "28 lines: 0 stored, 26 duplicates, 2 bad (skipped)" in again.output, again.output
    engine = _engine(sqlite_url, tmp_path)
    try:
        with engine.store.transaction() as tx:
            assert tx.events.count() == 26, "a line without a messageId is the same call the second time"
    finally:
        engine.close()


def test_import_with_start_flows_lets_fresh_entries_start_flows(sqlite_url: str, tmp_path: Path) -> None:
    _manual_database(sqlite_url, tmp_path)
    _import(str(_history(tmp_path)), "--db", sqlite_url, "--start-flows")
    engine = _engine(sqlite_url, tmp_path)
    try:
        [push] = engine.messages(user_id="u1", limit=100)
        assert (push.flow, push.channel) == ("cart_abandonment", "push")
        with engine.store.transaction() as tx:
            [entry] = tx.segments.transitions(user_id="u1", segment="cart_abandoners")
            assert tx.runs.ever_entered("seller_coach", ["s1"]) == {("s1", "")}
        assert entry.origin == "live"
        engine.advance(START + dt.timedelta(hours=1))
        with engine.store.transaction() as tx:
            assert tx.runs.ever_entered("first_buy_nudge", ["w1"]) == {("w1", "")}
    finally:
        engine.close()


def test_a_dry_run_validates_and_stores_nothing(sqlite_url: str, tmp_path: Path) -> None:
    _manual_database(sqlite_url, tmp_path)
    result = _import(str(_history(tmp_path)), "--db", sqlite_url, "--dry-run")
    assert "28 lines: 26 valid (dry run: nothing stored), 0 duplicates, 2 bad (skipped)" in result.output, \
        result.output
    engine = _engine(sqlite_url, tmp_path)
    try:
        with engine.store.transaction() as tx:
            assert tx.events.count() == 0
    finally:
        engine.close()
    missing = _import(str(tmp_path / "nope.jsonl"), "--db", sqlite_url)
    assert missing.exit_code != 0 and "no file" in str(missing.exception)
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("nope\n[1, 2]\n", encoding="utf-8")
    failed = _import(str(garbage), "--db", sqlite_url)
    assert failed.exit_code == 1, "a file of nothing but bad lines is a failure"
    assert "line 1: not JSON" in failed.output and "line 2: a call must be a JSON object" in failed.output


def test_import_on_the_real_clock_applies_the_history_itself(sqlite_url: str, tmp_path: Path) -> None:
    """No worker runs on this SQLite database: the import takes the worker lock and applies what it stored."""
    result = _import(str(_history(tmp_path)), "--db", sqlite_url)
    assert "26 stored" in result.output, result.output
    assert "a running worker applies" not in result.output
    engine = _engine(sqlite_url, tmp_path)
    try:
        assert engine.clock.mode == "real"
        assert "high_ltv" in (engine.user_view("u2") or {})["segments"], "lifetime spend, whatever the time"
        assert engine.messages(limit=100) == []
    finally:
        engine.close()


def test_an_import_that_applies_the_stages_sets_the_collector_up_as_a_worker(sqlite_url: str, tmp_path: Path) -> None:
    assert not collector.policy.on
    result = _import(str(_history(tmp_path)), "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    assert collector.policy.on and gc.get_threshold() == collector.LONG_RUNNING_THRESHOLDS
    assert gc.isenabled()


def _batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The ``batch_lines`` each import of the command asks for (the real import runs)."""
    asked: list[int | None] = []

    def recording(*args: Any, **kwargs: Any) -> ImportReport:
        asked.append(kwargs.get("batch_lines"))
        return import_history(*args, **kwargs)

    monkeypatch.setattr("growthengine.cli.history_import.import_history", recording)
    return asked


def test_an_import_alone_stores_bulk_transactions_and_beside_a_worker_smaller_ones(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _batch_sizes(monkeypatch)
    assert _import(str(_history(tmp_path)), "--db", sqlite_url).exit_code == 0
    lock = WorkerLock(sqlite_lock_path(sqlite_url) or tmp_path / "none")
    lock.acquire()  # a running engine's worker holds it: its ingestion waits for each of the import's commits
    try:
        beside = _import(str(_history(tmp_path)), "--db", sqlite_url)
    finally:
        lock.release()
    assert beside.exit_code == 0 and "a running worker applies" in beside.output, beside.output
    assert asked == [BULK_BATCH_LINES, BATCH_LINES]

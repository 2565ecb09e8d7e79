"""A batch of runs costs a bounded number of statements, not a few per run: what the runs read is prefetched, and
the ledger, outbox and timer rows are written in bulk. Counted with a SQLAlchemy statement listener."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from growthengine.clock import ManualClock
from tests.conftest import START, make_engine

TRAITS = {"push_token": "tok", "consent": {"push": True, "email": True, "in_app": True}}


def statements_per_pass(users: int, tmp_path: Path, sqlite_template: Path) -> tuple[int, int, int]:
    """Statements while ``users`` seller-coach runs start after their 3-day wait (an in-app message, an email and a
    2-day timer each), then again when that timer fires (the second email); and how many messages were sent."""
    db = tmp_path / f"n{users}.db"
    shutil.copy(sqlite_template, db)
    clock = ManualClock(START + dt.timedelta(hours=2))
    engine = make_engine(f"sqlite:///{db}", clock, tmp_path / f"n{users}")
    try:
        engine.ingest([{"type": "identify", "userId": f"u{i}", "traits": {**TRAITS, "email": f"u{i}@example.test"}}
                       for i in range(users)])
        engine.ingest([{"type": "track", "userId": f"u{i}", "event": "seller_registered", "messageId": f"s{i}"}
                       for i in range(users)])
        seen: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            seen.append(statement)

        sa.event.listen(engine.store.engine, "before_cursor_execute", count)
        engine.advance(clock.now() + dt.timedelta(days=3, minutes=1))
        first = len(seen)
        engine.advance(clock.now() + dt.timedelta(days=2, minutes=1))
        second = len(seen) - first
        sa.event.remove(engine.store.engine, "before_cursor_execute", count)
        sent = sum(1 for m in engine.messages(limit=10_000) if m.status == "sent")
    finally:
        engine.close()
    return first, second, sent


def test_a_batch_of_runs_costs_the_same_statements_for_4_or_40_runs(tmp_path: Path, sqlite_template: Path) -> None:
    few = statements_per_pass(4, tmp_path, sqlite_template)
    many = statements_per_pass(40, tmp_path, sqlite_template)
    assert (few[2], many[2]) == (4 * 3, 40 * 3), "every run sent its in-app message and both emails"
    assert many[:2] == few[:2], f"statements grew with the runs: {few[:2]} for 4 runs, {many[:2]} for 40"


def statements_to_enrol(users: int, tmp_path: Path, sqlite_template: Path, *, spread: dt.timedelta) -> tuple[int, int]:
    """Statements while ``users`` ``seller_registered`` events of one ingest call start their seller-coach runs
    (the flows stage's event triggers, one batch), with the events ``spread`` apart; and the runs started."""
    db = tmp_path / f"e{users}-{spread.total_seconds()}.db"
    shutil.copy(sqlite_template, db)
    clock = ManualClock(START + dt.timedelta(hours=2))
    engine = make_engine(f"sqlite:///{db}", clock, tmp_path / db.stem)
    try:
        engine.ingest([{"type": "identify", "userId": f"u{i}", "traits": {**TRAITS, "email": f"u{i}@example.test"}}
                       for i in range(users)])
        seen: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            seen.append(statement)

        first = START + dt.timedelta(hours=1)
        sa.event.listen(engine.store.engine, "before_cursor_execute", count)
        engine.ingest([{"type": "track", "userId": f"u{i}", "event": "seller_registered", "messageId": f"s{i}",
                        "timestamp": (first + i * spread).isoformat()} for i in range(users)])
        sa.event.remove(engine.store.engine, "before_cursor_execute", count)
        with engine.store.read() as tx:
            runs = sum(n for (status, _), n in tx.runs.step_counts("seller_coach").items())
    finally:
        engine.close()
    return len([s for s in seen if "flow_runs" in s]), runs


def test_event_triggers_enrol_a_whole_batch_at_once(tmp_path: Path, sqlite_template: Path) -> None:
    """The run statements (live-run check, insert, save) of 4 or 40 triggering events in one batch are the same."""
    few = statements_to_enrol(4, tmp_path, sqlite_template, spread=dt.timedelta(milliseconds=1))
    many = statements_to_enrol(40, tmp_path, sqlite_template, spread=dt.timedelta(milliseconds=1))
    assert (few[1], many[1]) == (4, 40)
    assert many[0] == few[0], f"run statements grew with the events: {few[0]} for 4, {many[0]} for 40"

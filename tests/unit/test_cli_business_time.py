"""Commands run against a database that a manual-clock engine wrote use that engine's business time (the stored
manual time), not the wall clock: ``growth segments rebuild`` evaluates windows and patterns as of it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from typer.testing import CliRunner

from growthengine import business_time
from growthengine.bootstrap import build_command_engine, build_engine
from growthengine.cli.app import app
from growthengine.clock import ManualClock, RealClock, to_us
from growthengine.settings import Settings
from growthengine.storage.unit_of_work import Store
from tests.conftest import START, make_engine


def _cart_abandoner(url: str, tmp_path: Path) -> ManualClock:
    clock = ManualClock(START)
    engine = make_engine(url, clock, tmp_path)
    try:
        engine.ingest([{"type": "track", "userId": "u1", "event": "add_to_cart", "messageId": "m1",
                        "properties": {"listing_id": "L1", "title": "Leica M6", "price": 90000}}])
        engine.advance(START + dt.timedelta(hours=2))
        assert "cart_abandoners" in (engine.user_view("u1") or {})["segments"]
        with engine.store.transaction() as tx:  # the segment tables are lost; the log is all there is
            tx.segments.delete_state("u1")
            tx.segments.delete_user_members("u1")
    finally:
        engine.close()
    return clock


def test_segments_rebuild_on_a_manual_clock_database_runs_at_the_stored_time(
        sqlite_url: str, tmp_path: Path) -> None:
    clock = _cart_abandoner(sqlite_url, tmp_path)
    result = CliRunner().invoke(app, ["segments", "rebuild", "cart_abandoners", "--db", sqlite_url])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "1 entered" in result.output, result.output
    engine = build_command_engine(Settings(db_url=sqlite_url, data_dir=tmp_path / "data"))
    try:
        assert isinstance(engine.clock, ManualClock) and engine.clock.now() == clock.now()
        assert "cart_abandoners" in (engine.user_view("u1") or {})["segments"], \
            "at the wall clock the cart add would be months old and long gone (leaves after 7 days)"
        with engine.store.transaction() as tx:
            rebuilt = [t for t in tx.segments.transitions(user_id="u1") if t.origin == "rebuild"]
        assert [(t.kind, t.at_us) for t in rebuilt] == [("enter", to_us(START + dt.timedelta(hours=2)))]
    finally:
        engine.close()


def test_a_real_clock_engine_takes_the_database_back_to_the_real_clock(sqlite_url: str, tmp_path: Path) -> None:
    _cart_abandoner(sqlite_url, tmp_path)
    settings = Settings(db_url=sqlite_url, data_dir=tmp_path / "data")
    command = build_command_engine(settings)
    assert command.clock.now() == START + dt.timedelta(hours=2)
    command.close()
    build_engine(settings).close()  # growth serve (or a worker) on the real clock wrote to it since
    store = Store.open(sqlite_url)
    with store.read() as tx:
        assert business_time.stored_manual_clock(tx) is None
    store.close()
    command = build_command_engine(settings)
    try:
        assert isinstance(command.clock, RealClock)
    finally:
        command.close()

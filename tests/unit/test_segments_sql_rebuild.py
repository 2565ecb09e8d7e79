"""The set-based (SQL) rebuild: diffs against stored members, records transitions, starts no flow, keeps the live
engine's state in step, falls back to the Python evaluator for what it cannot compile; ``growth segments rebuild
--engine sql``."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from typer.testing import CliRunner

from growthengine.cli.app import app
from growthengine.cli.options import CliError
from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.segments.model import Compare, EventAggregate, PropertyFilter, Segment
from growthengine.segments.sql_rebuild import sql_rebuild
from growthengine.storage.segment_store import Membership


def _track(user: str, event: str, at: dt.datetime, **props: object) -> dict[str, object]:
    return {"type": "track", "userId": user, "event": event, "properties": props, "timestamp": at.isoformat()}


def test_sql_rebuild_repairs_members_records_transitions_and_starts_no_flow(engine: Engine,
                                                                             clock: ManualClock) -> None:
    now = clock.now()
    engine.ingest([_track("u1", "purchase", now, order_id="o1", amount=6000.0, listing_ids=["L1"]),
                   _track("u2", "app_opened", now),
                   _track("u3", "add_to_cart", now - dt.timedelta(hours=2), listing_id="L7", title="Fuji", price=9)])
    with engine.store.transaction() as tx:
        assert {m.segment for m in tx.segments.members_of_user("u3")} == {"cart_abandoners"}
        runs_before = {u: len(tx.runs.for_user(u)) for u in ("u1", "u2", "u3")}
        # The stored answer goes wrong: u1's membership lost (member row and state), u2 made a member.
        tx.segments.delete_members([("high_ltv", "u1", "")])
        state = tx.segments.load_states(["u1"])["u1"]
        state["m"].pop("high_ltv")
        tx.segments.save_states({"u1": state}, 0)
        tx.segments.upsert_members([Membership("high_ltv", "u2", "", 1, {}, "made up")])
        result = sql_rebuild(engine.segments, tx)
    assert result.fell_back == [] and result.disagreements == 0
    assert set(result.compiled) == set(engine.segments.segments)
    assert (result.entered, result.exited) == (1, 1)
    with engine.store.transaction() as tx:
        transitions = [t for t in tx.segments.transitions(segment="high_ltv") if t.user_id in ("u1", "u2")]
        assert [(t.user_id, t.kind) for t in transitions][-2:] == [("u1", "enter"), ("u2", "exit")]
        assert transitions[-2].reason == "sum(purchase.amount, lifetime) = 6,000.00 > 5000"
        assert transitions[-1].reason.startswith("rebuild: ")
        assert {m.segment for m in tx.segments.members_of_user("u1")} == {"high_ltv"}
        assert tx.segments.members_of_user("u2") == []
        assert [m.entity for m in tx.segments.members_of_user("u3")] == ["L7"]  # unchanged: no transition
        assert "high_ltv" in tx.segments.load_states(["u1"])["u1"]["m"]
        assert {u: len(tx.runs.for_user(u)) for u in ("u1", "u2", "u3")} == runs_before  # no flow started
        again = sql_rebuild(engine.segments, tx)
    assert (again.entered, again.exited) == (0, 0)
    # The live engine goes on from the rebuilt answer: a second purchase is no new entry.
    engine.ingest([_track("u1", "purchase", now, order_id="o2", amount=10.0, listing_ids=["L2"])])
    with engine.store.transaction() as tx:
        assert [t.kind for t in tx.segments.transitions(user_id="u1", segment="high_ltv")] == ["enter", "enter"]


def test_a_segment_sql_cannot_express_falls_back_to_python(engine: Engine, clock: ManualClock,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    odd = Segment("odd", "odd", "realtime", EventAggregate(
        "location_searched", "count", Compare("gt", 0), where=(PropertyFilter("province", Compare("in", "Bangkok")),)))
    engine.segments.configure({**engine.segments.segments, "odd": odd})
    engine.ingest([_track("u1", "location_searched", clock.now(), province="Bang")])
    with engine.store.transaction() as tx:
        tx.segments.clear_segment("odd")  # the member and its state both lost: only a rebuild brings it back
        state = tx.segments.load_states(["u1"])["u1"]
        state["m"].pop("odd")
        tx.segments.save_states({"u1": state}, 0)
        with caplog.at_level(logging.INFO, logger="growthengine.segments.sql_rebuild"):
            result = sql_rebuild(engine.segments, tx, ["odd", "high_ltv"])
        assert result.fell_back == ["odd"] and result.compiled == ["high_ltv"] and result.entered == 1
        assert [m.segment for m in tx.segments.members_of_user("u1")] == ["odd"]  # "Bang" in "Bangkok"
    assert "segment odd cannot be rebuilt in SQL" in caplog.text


def test_cli_rebuild_with_the_sql_engine(sqlite_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["segments", "rebuild", "--engine", "sql", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "rebuilt all segments in SQL" in result.output and "0 entered, 0 left" in result.output
    refused = runner.invoke(app, ["segments", "rebuild", "--engine", "duck", "--db", sqlite_url])
    assert isinstance(refused.exception, CliError) and "--engine must be python or sql" in str(refused.exception)


def test_the_rebuild_times_its_phases_and_gives_its_connection_back_as_it_was(
        engine: Engine, clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    engine.ingest([_track("u1", "purchase", clock.now(), order_id="o1", amount=6000.0, listing_ids=["L1"])])
    with engine.store.transaction() as tx:
        pragmas = [tx.conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("cache_size", "mmap_size")]
        with caplog.at_level(logging.INFO, logger="growthengine.segments.sql_rebuild"):
            result = sql_rebuild(engine.segments, tx)
        # its own cache and memory map while it ran; the connection's own after
        assert [tx.conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("cache_size", "mmap_size")] == pragmas
    names = [p.name for p in result.phases]
    assert names[:3] == ["users' zones", "typed events", "log's users"] and "verdicts" in names and "writes" in names
    assert all(p.seconds >= 0 and p.cpu_s >= 0 for p in result.phases)
    assert "SQL rebuild's phases: users' zones" in caplog.text


class _Discard(Exception):
    """Rolls a transaction back on purpose."""


def test_active_days_beside_inactive_counted_where_they_can_matter(any_engine: Engine, clock: ManualClock) -> None:
    """churn_risk (inactive 30d, and 10 active days in the 60 before): the SQL rebuild counts active days only for
    inactive users and for users stored as members, and every entry's and exit's reason has the user's days (u2 is
    not inactive, but a stored member: its exit's reason counts its 13 days, not 0)."""
    now = clock.now()
    days = [now - dt.timedelta(days=d, hours=3) for d in range(35, 47)]  # 12 active days, 35-46 days ago
    calls = [_track(u, "app_opened", at) for u in ("u1", "u2", "u5") for at in days]
    calls += [_track(u, "app_opened", now - dt.timedelta(days=1)) for u in ("u2", "u5")]  # active again
    calls += [_track("u3", "app_opened", at) for at in days[:3]]  # u3: inactive, but 3 active days only
    any_engine.ingest(calls)
    with pytest.raises(_Discard), any_engine.store.transaction() as tx:
        tx.segments.clear_segment("churn_risk")
        tx.segments.upsert_members([Membership("churn_risk", u, "", 1, {}, "made up") for u in ("u2", "u3")])
        before = len(tx.segments.transitions(segment="churn_risk", limit=10_000))
        assert sql_rebuild(any_engine.segments, tx, ["churn_risk"]).compiled == ["churn_risk"]
        found = sorted((t.user_id, t.kind, t.reason)
                       for t in tx.segments.transitions(segment="churn_risk", limit=10_000)[before:])
        raise _Discard
    assert found == [
        ("u1", "enter", "no activity for 35 days (> 30d) and 12 active days in the 60d before the last activity ≥ 10"),
        ("u2", "exit", "rebuild: active 1 days ago (not > 30d) and 13 active days in the 60d before the last "
                       "activity ≥ 10"),
        ("u3", "exit", "rebuild: no activity for 35 days (> 30d) and 3 active days in the 60d before the last "
                       "activity ≥ 10"),
    ]

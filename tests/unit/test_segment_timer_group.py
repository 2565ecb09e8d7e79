"""The segment stage inside a group of timer instants (``segments/timer_group.py``): each instant evaluated as of its
due time, its rows written once for the group, and the same rows stored as when every instant wrote its own."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from growthengine.clock import ManualClock, to_us
from growthengine.engine import Engine
from growthengine.segments.model import Compare, EventAggregate, Segment
from growthengine.segments.segment_pass import TIMER_KIND
from growthengine.storage.segment_store import Transition
from growthengine.storage.timer_store import Timer, TimerStore
from growthengine.storage.unit_of_work import Tx
from tests.conftest import START, make_engine

MS = dt.timedelta(milliseconds=1)
CARTS = 40


def _carts(engine: Engine, clock: ManualClock) -> dt.datetime:
    """CARTS users add an item to the cart 7 ms apart; returns the last cart's time."""
    calls: list[dict[str, object]] = []
    last = START
    for n in range(CARTS):
        at = START + n * 7 * MS
        user = f"c{n}"
        calls.append({"type": "identify", "userId": user, "timestamp": at.isoformat(),
                      "traits": {"push_token": f"tok-{n}", "consent": {"push": True}, "language": "th"}})
        calls.append({"type": "track", "event": "add_to_cart", "userId": user, "timestamp": at.isoformat(),
                      "messageId": f"cart-{n}", "properties": {"listing_id": f"L{n}", "title": "กล้อง",
                                                               "price": 4500}})
        last = at
    clock.set(last)
    assert not engine.ingest(calls).rejected
    return last


def _stored(engine: Engine) -> dict[str, Any]:
    """What the segment stage and the flows it feeds stored, without ids."""
    with engine.store.read() as tx:
        conn = tx.conn
        return {
            "states": sorted(conn.exec_driver_sql("SELECT user_id, state FROM segment_state").fetchall()),
            "members": sorted(conn.exec_driver_sql(
                "SELECT segment_key, user_id, entity, since_us, data, reason FROM segment_members").fetchall()),
            "transitions": sorted(conn.exec_driver_sql(
                "SELECT segment_key, user_id, entity, kind, at_us, reason, event_us FROM segment_transitions"
            ).fetchall()),
            "timers": sorted(conn.exec_driver_sql('SELECT kind, "key", due_us FROM timers').fetchall()),
            "runs": sorted(conn.exec_driver_sql(
                "SELECT flow_key, user_id, entity, status, entered_us FROM flow_runs").fetchall()),
            "messages": sorted(conn.exec_driver_sql(
                "SELECT user_id, flow_key, channel, status, sent_us, body FROM messages").fetchall()),
        }


def test_a_group_of_instants_stores_what_each_instant_alone_would(engine: Engine, clock: ManualClock,
                                                                   sqlite_template: Path, tmp_path: Path) -> None:
    # The same carts on a second engine whose scheduler does not defer the segment stage's writes.
    other_file = tmp_path / "alone.db"
    shutil.copyfile(sqlite_template, other_file)
    other_clock = ManualClock(START)
    alone = make_engine(f"sqlite:///{other_file}", other_clock, tmp_path / "alone")
    try:
        alone.scheduler.batches.remove(alone.segments.timer_group)
        saves: list[int] = []
        save = engine.segments.cache.save

        def counted(tx: Tx, states: dict[str, Any], at_us: int) -> None:
            saves.append(len(states))
            save(tx, states, at_us)

        engine.segments.cache.save = counted  # type: ignore[method-assign]
        for eng, clk in ((engine, clock), (alone, other_clock)):
            last = _carts(eng, clk)
            eng.advance(last + dt.timedelta(hours=1, seconds=1))
        grouped, each = _stored(engine), _stored(alone)
    finally:
        alone.close()
    assert grouped == each
    entered = [t for t in grouped["transitions"] if t[0] == "cart_abandoners" and t[3] == "enter"]
    assert len(entered) == CARTS
    assert len([m for m in grouped["messages"] if m[1] == "cart_abandonment"]) == CARTS
    assert max(saves) == CARTS, "the forty instants' states were written in one statement"


def _busy(engine: Engine) -> None:
    """A segment whose timer, when it fires, books the next look 100 ms later (inside the same group)."""
    busy = Segment("busy", "busy", "realtime", EventAggregate("ping", "count", Compare("gt", 1), within_us=500_000))
    engine.segments.configure({**engine.segments.segments, "busy": busy})


def _pings(user: str, at: dt.datetime, offsets_ms: list[int]) -> list[dict[str, object]]:
    return [{"type": "track", "event": "ping", "userId": user, "messageId": f"{user}-{ms}", "properties": {},
             "timestamp": (at + ms * MS).isoformat()} for ms in offsets_ms]


def test_a_look_booked_inside_the_group_fires_in_time_order(any_engine: Engine, clock: ManualClock) -> None:
    """u1's look at +500 ms finds two pings still in the window and books the next at +600 ms: written at once,
    it fires before u2's look at +650 ms, and u1 leaves at +600 ms on the state its first look left (each user's
    last look, when the last ping leaves the window, changes nothing)."""
    engine = any_engine
    _busy(engine)
    at = START + dt.timedelta(minutes=10)
    clock.set(at + 300 * MS)
    assert not engine.ingest(_pings("u1", at, [0, 100, 200]) + _pings("u2", at, [150, 250])).rejected
    fired: list[tuple[str, int]] = []

    def observed(tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        fired.extend((t.payload["u"], to_us(due) - to_us(at)) for t in timers if t.payload.get("s") == "busy")
        engine.segments.on_timers(tx, timers, due)

    engine.scheduler.register(TIMER_KIND, observed)
    engine.advance(at + dt.timedelta(seconds=2))
    assert fired == [("u1", 500_000), ("u1", 600_000), ("u2", 650_000), ("u1", 700_000), ("u2", 750_000)]
    engine.segments.forget_cached(None)  # what is stored, not what memory holds
    with engine.store.read() as tx:
        moves = sorted((t.user_id, t.kind, t.at_us - to_us(at)) for t in tx.segments.transitions(segment="busy"))
        assert not [m for m in tx.segments.members_of_user("u1") if m.segment == "busy"]
    assert moves == [("u1", "enter", 300_000), ("u1", "exit", 600_000),
                     ("u2", "enter", 300_000), ("u2", "exit", 650_000)]


class _FailsOn:
    """A transition listener that fails on one user's, or one segment's, transitions (a flow's bug)."""

    def __init__(self, *, user_id: str | None = None, segment: str | None = None) -> None:
        self.user_id = user_id
        self.segment = segment

    def on_transitions(self, tx: Tx, transitions: list[Transition]) -> None:
        if any(t.user_id == self.user_id or t.segment == self.segment for t in transitions):
            raise RuntimeError("a flow failed")


@pytest.mark.parametrize("bad", ["c0", "c17", "c39"])
def test_a_failing_instant_in_a_group_is_undone_alone(engine: Engine, clock: ManualClock, bad: str) -> None:
    """The failing instant (first, middle or last of the group) keeps nothing and is booked again; the others'
    rows are all written, and what memory holds is what is stored."""
    last = _carts(engine, clock)
    engine.segments.listeners.append(_FailsOn(user_id=bad))
    engine.advance(last + dt.timedelta(hours=1, milliseconds=10))  # before the failed look's retry, 1 s later
    with engine.store.read() as tx:
        entered = {t.user_id for t in tx.segments.transitions(segment="cart_abandoners") if t.kind == "enter"}
        retry = tx.timers.get(f"seg:cart_abandoners:{bad}")
    assert entered == {f"c{n}" for n in range(CARTS)} - {bad}
    assert retry is not None and retry.attempts == 1
    with engine.store.read() as tx:
        in_memory = engine.segments.cache.load(tx, [f"c{n}" for n in range(CARTS)])
        stored = tx.segments.load_states([f"c{n}" for n in range(CARTS)])
    assert in_memory == stored
    engine.segments.listeners.pop()
    engine.advance(last + dt.timedelta(hours=1, seconds=5))
    with engine.store.read() as tx:
        entered = {t.user_id for t in tx.segments.transitions(segment="cart_abandoners") if t.kind == "enter"}
    assert bad in entered


def test_a_user_at_two_instants_of_a_group_keeps_the_first_when_the_second_fails(engine: Engine,
                                                                                  clock: ManualClock) -> None:
    """u1's cart look (at +1 h) and busy look (100 ms later) fall in one group. The first is written before the
    second fires, so the second's failure undoes only its own change: retried, it still finds u1 leaving busy."""
    _busy(engine)
    assert not engine.ingest([{"type": "track", "event": "add_to_cart", "userId": "u1", "messageId": "cart",
                               "timestamp": START.isoformat(),
                               "properties": {"listing_id": "L1", "title": "กล้อง", "price": 4500}}]).rejected
    hour = START + dt.timedelta(hours=1)
    engine.advance(hour - 300 * MS)
    assert not engine.ingest(_pings("u1", hour, [-400, -300])).rejected
    engine.segments.listeners.append(_FailsOn(segment="busy"))
    engine.advance(hour + 150 * MS)  # the cart look at +0, the busy look at +100 ms fails
    with engine.store.read() as tx:
        moves = sorted((t.segment, t.kind, t.at_us - to_us(hour)) for t in tx.segments.transitions(user_id="u1"))
        retry = tx.timers.get("seg:busy:u1")
    assert moves == [("busy", "enter", -300_000), ("cart_abandoners", "enter", 0)]
    assert retry is not None and (retry.attempts, retry.due_us - to_us(hour)) == (1, 1_100_000)
    engine.segments.listeners.pop()
    engine.advance(hour + dt.timedelta(seconds=2))
    with engine.store.read() as tx:
        moves = sorted((t.segment, t.kind, t.at_us - to_us(hour)) for t in tx.segments.transitions(user_id="u1"))
    assert ("busy", "exit", 1_100_000) in moves


def test_a_group_abandoned_whole_leaves_memory_as_stored(engine: Engine, clock: ManualClock,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim of the group's 21st instant fails: the transaction goes, and with it every unwritten pass's state
    in memory; fired again, every cart enters once."""
    last = _carts(engine, clock)
    take = TimerStore.take_next_instant
    claims = [0]

    def failing(self: TimerStore, until_us: int, *, limit: int) -> list[Timer]:
        claims[0] += 1
        if claims[0] == 21:
            raise RuntimeError("the database went away")
        return take(self, until_us, limit=limit)

    monkeypatch.setattr(TimerStore, "take_next_instant", failing)
    with pytest.raises(RuntimeError):
        engine.advance(last + dt.timedelta(hours=1, seconds=1))
    monkeypatch.setattr(TimerStore, "take_next_instant", take)
    engine.advance(last + dt.timedelta(hours=1, seconds=1))
    with engine.store.read() as tx:
        entered = [t.user_id for t in tx.segments.transitions(segment="cart_abandoners") if t.kind == "enter"]
    assert sorted(entered) == sorted(f"c{n}" for n in range(CARTS))

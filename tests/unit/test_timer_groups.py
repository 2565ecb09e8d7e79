"""Timers due milliseconds apart fire together (one transaction, one round of the stages), each as of its own due
time: the cart timers of carts abandoned milliseconds apart start their runs and send their pushes at their own
instants; a timer that an instant books before the next one still fires in time order."""

from __future__ import annotations

import datetime as dt

from growthengine.clock import ManualClock, from_us, to_us
from growthengine.engine import Engine
from growthengine.scheduler.runner import TimerHandler
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Tx
from tests.conftest import START

MS = dt.timedelta(milliseconds=1)


def test_carts_abandoned_milliseconds_apart_are_nudged_each_at_its_own_hour(engine: Engine,
                                                                           clock: ManualClock) -> None:
    carts = [START + n * 3 * MS for n in range(5)]
    calls: list[dict[str, object]] = []
    for n, at in enumerate(carts):
        user = f"c{n}"
        calls.append({"type": "identify", "userId": user, "timestamp": at.isoformat(),
                      "traits": {"push_token": f"tok-{n}", "consent": {"push": True}}})
        calls.append({"type": "track", "event": "add_to_cart", "userId": user, "timestamp": at.isoformat(),
                      "properties": {"listing_id": f"L{n}", "title": "กล้อง", "price": 4500}})
    clock.set(carts[-1])
    assert not engine.ingest(calls).rejected
    groups: list[dt.datetime] = []
    engine.scheduler.after_commit.append(lambda: groups.append(clock.now()))
    engine.advance(carts[-1] + dt.timedelta(hours=1, seconds=1))
    with engine.store.read() as tx:
        for n, at in enumerate(carts):
            [run] = [r for r in tx.runs.for_user(f"c{n}") if r.flow == "cart_abandonment"]
            [push] = tx.messages.query(user_id=f"c{n}", flow="cart_abandonment")
            due = to_us(at + dt.timedelta(hours=1))
            assert (run.entered_us, push.status, push.sent_us) == (due, "sent", due)
    # the five carts' instants: one transaction and one round of the stages
    assert len([g for g in groups if g >= carts[0] + dt.timedelta(hours=1)]) == 1


def test_a_timer_booked_by_an_instant_fires_before_a_later_one(engine: Engine, clock: ManualClock) -> None:
    fired: list[tuple[str, dt.datetime]] = []

    def first(tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        fired.append(("first", clock.now()))
        tx.timers.schedule("test_booked", "booked", to_us(due) + 1000, {})

    def record(kind: str) -> TimerHandler:
        def handler(tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
            assert to_us(due) == timers[0].due_us
            fired.append((kind, clock.now()))
        return handler

    engine.scheduler.register("test_first", first)
    engine.scheduler.register("test_booked", record("test_booked"))
    engine.scheduler.register("test_later", record("test_later"))
    at = START + dt.timedelta(minutes=5)
    with engine.store.transaction() as tx:
        tx.timers.schedule("test_first", "first", to_us(at), {})
        tx.timers.schedule("test_later", "later", to_us(at) + 2000, {})
    engine.advance(at + dt.timedelta(seconds=1))
    assert fired == [("first", at), ("test_booked", from_us(to_us(at) + 1000)),
                     ("test_later", from_us(to_us(at) + 2000))]


def test_a_failing_instant_is_undone_alone_and_booked_again(engine: Engine, clock: ManualClock) -> None:
    """In a group, an instant whose handler fails loses its writes and is booked again with a backoff; the
    instants before and after it keep theirs; a handler booking its own key again (a recurrence) keeps the new
    timer."""
    fired: list[str] = []

    def handler(tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        [timer] = timers
        tx.state.put(f"test:{timer.key}", to_us(due))
        fired.append(timer.key)
        if timer.key == "bad":
            raise RuntimeError("this instant fails")
        if timer.key == "again":
            tx.timers.schedule("test_kind", "again", to_us(due) + 3_600_000_000, {})

    engine.scheduler.register("test_kind", handler)
    at = START + dt.timedelta(minutes=5)
    with engine.store.transaction() as tx:
        for n, key in enumerate(("good", "bad", "again")):
            tx.timers.schedule("test_kind", key, to_us(at) + n * 1000, {})
    engine.advance(at + dt.timedelta(seconds=1))
    assert fired == ["good", "bad", "again"]
    with engine.store.read() as tx:
        assert tx.state.get("test:good") == to_us(at)
        assert tx.state.get("test:bad") is None, "the failed instant's writes were rolled back"
        assert tx.state.get("test:again") == to_us(at) + 2000
        bad, again = tx.timers.get("bad"), tx.timers.get("again")
        assert bad is not None and (bad.due_us, bad.attempts) == (to_us(at) + 1000 + 1_000_000, 1)
        assert again is not None and again.due_us == to_us(at) + 2000 + 3_600_000_000
    engine.advance(at + dt.timedelta(seconds=3))
    assert fired == ["good", "bad", "again", "bad"]
    with engine.store.read() as tx:
        bad = tx.timers.get("bad")
        assert bad is not None and bad.attempts == 2

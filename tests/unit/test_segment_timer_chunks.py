"""Segment timers due at one instant fire as sets, a chunk at a time: each chunk is claimed by one statement and
committed with its effects, every timer is evaluated as of its own due time, and a segment that needs the profile
(a trait, a refresh instant in the user's time zone) still reads it while the others do not."""

from __future__ import annotations

import datetime as dt
import gc
from zoneinfo import ZoneInfo

from growthengine.clock import ManualClock, from_us, to_us
from growthengine.engine import Engine
from growthengine.scheduler.collector import collector_paused
from growthengine.segments.model import All, Compare, EventAggregate, Inactive, InSegment, Segment, TraitCondition
from growthengine.segments.segment_pass import TIMER_KIND, timer_key
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Tx
from tests.conftest import START

HOUR_US = 3_600_000_000


def _cart(user: str, at: dt.datetime) -> dict[str, object]:
    return {"type": "track", "event": "add_to_cart", "userId": user, "timestamp": at.isoformat(),
            "messageId": f"cart-{user}", "properties": {"listing_id": f"L-{user}", "title": "กล้อง", "price": 900}}


def test_timers_due_at_one_instant_fire_a_chunk_per_transaction_each_as_of_the_instant(any_engine: Engine) -> None:
    engine = any_engine
    users = [f"c{n}" for n in range(7)]
    assert not engine.ingest([_cart(u, START) for u in users]).rejected
    engine.scheduler.chunk = 3
    chunks: list[int] = []
    handler = engine.segments.on_timers

    def counted(tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        chunks.append(len(timers))
        handler(tx, timers, due)

    engine.scheduler.register(TIMER_KIND, counted)
    commits: list[int] = []
    engine.scheduler.after_commit.append(lambda: commits.append(len(chunks)))
    due = START + dt.timedelta(hours=1)
    engine.advance(due + dt.timedelta(minutes=1))
    assert chunks == [3, 3, 1] and [c for c in commits if c] == [1, 2, 3]  # a chunk per claim, each committed
    with engine.store.read() as tx:
        entries = [t for t in tx.segments.transitions(segment="cart_abandoners") if t.kind == "enter"]
        assert sorted((t.user_id, t.entity, t.at_us, t.event_us) for t in entries) == [
            (u, f"L-{u}", to_us(due), to_us(due)) for u in users]
        assert all(t.reason.startswith("add_to_cart of listing_id L-c") for t in entries)
        assert {m.user_id for m in tx.segments.memberships_page("cart_abandoners", after=None, limit=100)} == set(users)
        for user in users:  # each user's next look: the day the cart item leaves the segment
            timer = tx.timers.get(timer_key("cart_abandoners", user))
            assert timer is not None and timer.due_us == to_us(START + dt.timedelta(days=7))
        assert tx.timers.due_count(to_us(due + dt.timedelta(minutes=1))) == 0


def test_a_timer_reads_the_profile_only_for_segments_that_need_it(engine: Engine, clock: ManualClock) -> None:
    # A trait and inactivity (realtime), a segment that refers to it, and an hourly window in the user's time zone.
    added = {
        "th_idle": Segment("th_idle", "idle Thai", "realtime", All((
            TraitCondition("country", Compare("eq", "TH")), Inactive(HOUR_US)))),
        "th_idle_fan": Segment("th_idle_fan", "fan", "realtime", InSegment("th_idle")),
        "hourly_buyer": Segment("hourly_buyer", "hourly buyer", "hourly", EventAggregate(
            "purchase", "count", Compare("gt", 0), within_us=HOUR_US)),
    }
    engine.segments.configure({**engine.segments.segments, **added})
    at = START + dt.timedelta(minutes=10)
    clock.set(at)
    calls: list[dict[str, object]] = []
    for user, country in (("th", "TH"), ("jp", "JP")):
        calls.append({"type": "identify", "userId": user, "timestamp": at.isoformat(),
                      "traits": {"country": country, "timezone": "Asia/Kolkata"}})
        calls.append({"type": "track", "event": "purchase", "userId": user, "timestamp": at.isoformat(),
                      "messageId": f"buy-{user}", "properties": {"order_id": f"o-{user}", "amount": 100}})
    assert not engine.ingest(calls).rejected
    engine.advance(at + dt.timedelta(hours=3))
    with engine.store.read() as tx:
        found = {(t.segment, t.user_id, t.kind): t for t in tx.segments.transitions(limit=1000)
                 if t.segment in added}
    idle_at = to_us(at) + HOUR_US + 1  # inactivity runs out: the trait is read when the timer fires
    assert found[("th_idle", "th", "enter")].at_us == idle_at
    fan = found[("th_idle_fan", "th", "enter")]
    assert (fan.at_us, fan.reason) == (idle_at, "in segment th_idle")  # evaluated after it, worded as it enters
    assert ("th_idle", "jp", "enter") not in found
    # The hourly segment applies at the top of the hour in the user's zone (Kolkata: half past in Bangkok).
    for kind in ("enter", "exit"):
        local = from_us(found[("hourly_buyer", "th", kind)].at_us).astimezone(ZoneInfo("Asia/Kolkata"))
        assert (local.minute, local.second) == (0, 0)
    assert found[("hourly_buyer", "th", "exit")].at_us >= to_us(at) + HOUR_US


def test_the_collector_is_held_off_while_a_group_fires_and_restored_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():  # nested (another thread's group): still off until the last one ends
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()

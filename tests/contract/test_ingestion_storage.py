"""The ingestion path and the storage port behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from growthengine.clock import ManualClock, to_us
from growthengine.engine import Engine


def test_identify_and_track_build_a_profile(any_engine: Engine, clock: ManualClock) -> None:
    result = any_engine.ingest([
        {"type": "identify", "userId": "u1", "traits": {"email": "somchai@example.com", "language": "th",
                                                        "consent": {"push": True}}},
        {"type": "track", "userId": "u1", "event": "app_opened"},
    ])
    assert result.as_dict() == {"accepted": 2, "duplicates": 0, "rejected": []}
    view = any_engine.user_view("u1")
    assert view is not None
    assert view["traits"] == {"email": "somchai@example.com", "language": "th", "consent": {"push": True}}
    assert view["computed"]["last_active"] == "2026-01-05T02:00:00Z"


def test_message_id_makes_calls_idempotent(any_engine: Engine) -> None:
    call = {"type": "track", "userId": "u1", "event": "item_viewed", "messageId": "m-1"}
    first = any_engine.ingest([call, dict(call)])
    again = any_engine.ingest([call])
    assert (first.accepted, first.duplicates) == (1, 1)
    assert (again.accepted, again.duplicates) == (0, 1)
    with any_engine.store.transaction() as tx:
        assert tx.events.count() == 1


def test_a_bad_call_is_rejected_alone(any_engine: Engine) -> None:
    result = any_engine.ingest([
        {"type": "track", "userId": "u1", "event": "app_opened"},
        {"type": "track", "userId": "u1"},
        {"type": "identify", "userId": "u1", "traits": {"phone": "0812", "email": "nok@example.com"}},
        {"type": "track", "event": "x"},
        {"type": "track", "userId": "u2", "event": "app_opened"},
    ])
    assert result.accepted == 3
    assert [r.index for r in result.rejected] == [1, 3]
    assert [(w.index, w.path) for w in result.warnings] == [(2, "traits.phone")]  # dropped alone, the call kept
    view = any_engine.user_view("u1")
    assert view is not None and view["traits"] == {"email": "nok@example.com"}


def test_back_filled_traits_do_not_overwrite_newer_ones(any_engine: Engine, clock: ManualClock) -> None:
    now = clock.now()
    any_engine.ingest([{"type": "identify", "userId": "u1", "traits": {"province": "Chiang Mai"}}])
    old = (now - dt.timedelta(days=3)).isoformat()
    any_engine.ingest([{"type": "identify", "userId": "u1", "timestamp": old,
                        "traits": {"province": "Bangkok", "name": "Somchai"}}])
    view = any_engine.user_view("u1")
    assert view is not None
    assert view["traits"] == {"province": "Chiang Mai", "name": "Somchai"}
    assert view["computed"]["first_seen"].startswith("2026-01-02")


def test_anonymous_history_merges_on_identify(any_engine: Engine) -> None:
    any_engine.ingest([
        {"type": "track", "anonymousId": "anon-9", "event": "item_viewed", "properties": {"listing_id": "L1"}},
        {"type": "page", "anonymousId": "anon-9", "name": "home"},
    ])
    assert any_engine.user_view("u7") is None
    any_engine.ingest([{"type": "identify", "userId": "u7", "anonymousId": "anon-9", "traits": {"name": "Nok"}}])
    any_engine.ingest([{"type": "track", "anonymousId": "anon-9", "event": "app_opened"}])
    with any_engine.store.transaction() as tx:
        names = [e.name for e in tx.events.for_user("u7")]
        assert tx.profiles.get("anon:anon-9") is None
    assert sorted(names) == ["app_opened", "identify", "item_viewed", "page"]


def test_unsubscribed_event_removes_consent(any_engine: Engine) -> None:
    any_engine.ingest([{"type": "identify", "userId": "u1", "traits": {"consent": {"email": True, "push": True}}}])
    any_engine.ingest([{"type": "track", "userId": "u1", "event": "unsubscribed", "properties": {"channel": "email"}}])
    view = any_engine.user_view("u1")
    assert view is not None
    assert view["traits"]["consent"] == {"email": False, "push": True}


def test_timers_fire_in_order_at_their_due_time(any_engine: Engine, clock: ManualClock) -> None:
    seen: list[tuple[str, dt.datetime, dt.datetime]] = []

    def handler(tx, timers, due):  # type: ignore[no-untyped-def]
        for t in timers:
            seen.append((t.key, due, clock.now()))
        if any(t.key == "a" for t in timers):
            tx.timers.schedule("test", "c", to_us(due + dt.timedelta(minutes=30)))

    any_engine.scheduler.register("test", handler)
    start = clock.now()
    with any_engine.store.transaction() as tx:
        tx.timers.schedule("test", "b", to_us(start + dt.timedelta(hours=2)))
        tx.timers.schedule("test", "a", to_us(start + dt.timedelta(hours=1)))
        tx.timers.schedule("test", "late", to_us(start + dt.timedelta(hours=9)))
    processed = any_engine.advance(start + dt.timedelta(hours=3))
    assert processed >= 3
    assert [k for k, _, _ in seen] == ["a", "c", "b"]
    assert all(due == at for _, due, at in seen)
    assert clock.now() == start + dt.timedelta(hours=3)
    with any_engine.store.transaction() as tx:
        assert tx.timers.count("test") == 1


def test_activity_moves_first_seen_back_and_last_active_forward_without_touching_traits(
        any_engine: Engine, clock: ManualClock) -> None:
    """Tracks, pages and screens upsert their profiles in SQL (no read); identify and alias still go through the
    profile itself: both give the same first seen, last active and traits."""
    now = clock.now()

    def at(days: float) -> str:
        return (now - dt.timedelta(days=days)).isoformat()

    any_engine.ingest([{"type": "identify", "userId": "u1", "timestamp": at(2), "traits": {"name": "Nok"}}])
    any_engine.ingest([
        {"type": "track", "userId": "u1", "event": "item_viewed", "timestamp": at(1)},
        {"type": "page", "userId": "u1", "name": "home", "timestamp": at(1.5)},
        {"type": "track", "userId": "u2", "event": "item_viewed", "timestamp": at(0.5)},
        {"type": "screen", "userId": "u2", "name": "cart", "timestamp": at(0.25)},
        {"type": "group", "userId": "u3", "groupId": "g1", "timestamp": at(3)},
    ])
    any_engine.ingest([{"type": "track", "userId": "u1", "event": "search", "timestamp": at(4)},  # late, old
                       {"type": "group", "userId": "u2", "groupId": "g1", "timestamp": at(6)}])
    u1, u2, u3 = (any_engine.user_view(u) for u in ("u1", "u2", "u3"))
    assert u1 is not None and u2 is not None and u3 is not None
    assert u1["traits"] == {"name": "Nok"}
    assert u1["computed"]["first_seen"] == _z(now - dt.timedelta(days=4))
    assert u1["computed"]["last_active"] == _z(now - dt.timedelta(days=1))  # the late track moved it no further
    assert u2["computed"]["first_seen"] == _z(now - dt.timedelta(days=6))  # a group call only moves first seen
    assert u2["computed"]["last_active"] == _z(now - dt.timedelta(days=0.25))
    assert u3["computed"]["first_seen"] == _z(now - dt.timedelta(days=3)) and u3["traits"] == {}
    assert u3["computed"]["last_active"] is None
    with any_engine.store.transaction() as tx:
        stored = tx.profiles.get_many(["u1", "u2", "u3"])
    assert not any(p.anonymous for p in stored.values())
    assert stored["u2"].first_seen_us == to_us(now - dt.timedelta(days=6))


def _z(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""Erasure on both databases (CONTRACT.md 10): the tombstone in the log against a worker that has not caught up.

Events of the user still waiting in the log when the erasure commits must rebuild nothing; the same id identified
again after the tombstone (also still waiting) is a new person; every table is then clean of the old one.
"""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from growthengine.engine import Engine
from growthengine.storage.schema import events
from tests.erasure_traces import traces

USER = "erase-contract-5c1"
OLD_EMAIL = "old.life@example.test"
OLD_PUSH = "old-push-token-77"
OLD_TITLE = "Fujifilm erase-contract"
EVERYTHING = {"push": True, "email": True, "sms": True, "in_app": True, "ads": True}


def stored(engine: Engine, calls: list[dict[str, object]]) -> None:
    """Into the log only: the stages have not seen them (a worker behind)."""
    result = engine.ingestion.ingest(calls)
    assert not result.rejected, result.rejected


def test_pending_events_rebuild_nothing_and_a_new_life_starts_fresh(any_engine: Engine) -> None:
    engine = any_engine
    engine.ingest([{"type": "identify", "userId": USER, "anonymousId": "device-1",
                    "traits": {"email": OLD_EMAIL, "push_token": OLD_PUSH, "consent": EVERYTHING}},
                   {"type": "track", "userId": USER, "event": "add_to_cart",
                    "properties": {"listing_id": "L1", "title": OLD_TITLE, "price": 100, "stock": 1}}])
    engine.advance(engine.clock.now().replace(hour=23))
    before = engine.messages(user_id=USER, limit=1000)
    assert before and engine.user_view(USER)["segments"]  # type: ignore[index]
    # The worker falls behind: more of the old life waits in the log, then the erasure, then a new life.
    stored(engine, [{"type": "track", "userId": USER, "event": "add_to_cart",
                     "properties": {"listing_id": "L2", "title": OLD_TITLE, "price": 5, "stock": 1}},
                    {"type": "track", "userId": USER, "event": "favorite_added", "properties": {"listing_id": "L9"}},
                    {"type": "identify", "userId": USER, "traits": {"consent": {"sms": False}}}])
    with engine.store.transaction() as tx:
        receipt = engine.erasure.erase(tx, USER, "cli")
    assert receipt is not None and receipt.events_deleted >= 5
    assert engine.user_view(USER) is None, "404 at once, before any stage ran"
    stored(engine, [{"type": "identify", "userId": USER, "traits": {"name": "New", "consent": {"push": True}}}])
    engine.process_pending()

    with engine.store.transaction() as tx:
        assert traces(tx.conn, [OLD_EMAIL, OLD_PUSH, OLD_TITLE, "device-1"]) == []
        # The id is back, and holds only the new life.
        assert [(c.channel, c.granted, c.source) for c in tx.consent.for_user(USER)] == [("push", True, "identify")]
        assert [(c.channel, c.granted, c.source, c.detail) for c in tx.consent.for_user(receipt.token)] == [
            ("all", False, "erasure", "cli")]
        assert tx.segments.members_of_user(USER) == [] and tx.segments.transitions(user_id=USER) == []
        assert tx.runs.for_user(USER) == [] and tx.coupons.for_user(USER) == []
        assert tx.segments.load_states([USER]).get(USER, {}).get("m", {}) == {}
        rows = tx.conn.execute(events.select().where(events.c.user_id == USER)).mappings().all()
        assert [(r["type"], r["name"]) for r in rows] == [("identify", "identify")]
        [tombstone] = tx.conn.execute(events.select().where(events.c.name == "erase")).mappings().all()
        assert tombstone["user_id"] == receipt.token and USER not in tombstone["payload"]
    assert engine.user_view(USER) == {"userId": USER, "traits": {"name": "New", "consent": {"push": True}},
                                      "computed": engine.user_view(USER)["computed"], "segments": []}  # type: ignore[index]
    assert engine.messages(user_id=USER, limit=1000) == []
    kept = engine.messages(user_id=receipt.token, limit=1000)
    assert [m.id for m in kept] == [m.id for m in before]
    assert all(m.body == "" and m.title is None and m.data.get("erased") for m in kept)


def test_an_unknown_user_or_a_second_erasure_is_refused(any_engine: Engine) -> None:
    engine = any_engine
    assert engine.erase_user("nobody-here", "api") is None
    engine.ingest([{"type": "track", "anonymousId": "only-a-visitor", "event": "app_opened"}])
    assert engine.erase_user("anon:only-a-visitor", "api") is None, "a visitor is not a user"
    engine.ingest([{"type": "identify", "userId": USER, "traits": {"email": OLD_EMAIL}}])
    first = engine.erase_user(USER, "api")
    assert first is not None and engine.erase_user(USER, "api") is None


@pytest.mark.parametrize("pending", [True, False])
def test_waiting_messages_and_timers_of_the_user_are_cancelled(any_engine: Engine, pending: bool) -> None:
    """Held messages (quiet hours) and run timers stop with the erasure; the cancellation counts in KPIs."""
    engine = any_engine
    night = engine.clock.now().replace(hour=22)
    engine.advance(night)
    engine.ingest([{"type": "identify", "userId": USER, "traits": {"push_token": OLD_PUSH, "consent": EVERYTHING}},
                   {"type": "track", "userId": USER, "event": "add_to_cart",
                    "properties": {"listing_id": "L1", "title": OLD_TITLE, "price": 100, "stock": 1}}])
    engine.advance(engine.clock.now().replace(hour=23, minute=30))
    held = [m for m in engine.messages(user_id=USER, limit=100) if m.status == "scheduled"]
    assert held, "quiet hours hold the push"
    with engine.store.transaction() as tx:
        timers_before = tx.timers.count()
    if pending:
        with engine.store.transaction() as tx:
            assert engine.erasure.erase(tx, USER, "api") is not None
        engine.process_pending()
    else:
        assert engine.erase_user(USER, "api") is not None
    with engine.store.transaction() as tx:
        assert tx.timers.count() < timers_before
        assert traces(tx.conn, [USER, OLD_PUSH, OLD_TITLE]) == []
    engine.advance(engine.clock.now() + dt.timedelta(days=3))
    statuses = {m.id: (m.status, m.reason) for m in engine.messages(limit=1000) if m.id in {h.id for h in held}}
    assert set(statuses.values()) == {("cancelled", "erased")}


def test_a_favoriter_erased_while_the_fan_out_waits_leaves_no_trace_and_the_others_are_reached(
        any_engine: Engine) -> None:
    """A price drop's enrolments travel as pages of users (``flows/enrol_pages.py``). A favoriter erased after the
    pages were written and before their owner applied them is not enrolled, the others on the same pages are, and
    no log row names the erased user afterwards."""
    engine = any_engine
    fans = [f"fan-erase-{n}" for n in range(40)]
    gone = fans[7]
    engine.ingest([{"type": "identify", "userId": f, "traits": {"push_token": f"t-{f}", "consent": {"push": True}}}
                   for f in fans])
    engine.ingest([{"type": "track", "userId": f, "event": "favorite_added", "properties": {"listing_id": "L-er"}}
                   for f in fans])
    engine.ingest([{"type": "track", "userId": "seller-er", "event": "listing_created",
                    "properties": {"listing_id": "L-er", "title": "Fuji", "price": 1000, "category": "cameras"}}])
    stored(engine, [{"type": "track", "userId": "seller-er", "event": "listing_price_changed",
                     "properties": {"listing_id": "L-er", "old_price": 1000, "new_price": 800}}])
    engine.pipeline.step()  # the price change: a fan-out command per partition
    engine.pipeline.step()  # the fan-out: the pages of favoriters, not applied yet
    with engine.store.transaction() as tx:
        pages = tx.conn.execute(events.select().where(events.c.name == "flow_enroll")).mappings().all()
        assert pages and any(gone in r["payload"] for r in pages), "a page names the user"
        assert all(r["user_id"] not in fans for r in pages), "pages are not keyed by a user they name"
        assert sum(len(orjson.loads(r["payload"])["users"]) for r in pages) == len(fans)
        assert engine.erasure.erase(tx, gone, "api") is not None
    engine.process_pending()
    with engine.store.transaction() as tx:
        runs = sorted(r.user_id for f in fans for r in tx.runs.for_user(f) if r.flow == "price_drop")
        assert traces(tx.conn, [gone]) == []
        named = sum(orjson.loads(r["payload"])["named"] for r in tx.conn.execute(
            events.select().where(events.c.name == "flow_enroll")).mappings())
    assert runs == sorted(f for f in fans if f != gone)
    assert named == len(fans), "every page applied, its names emptied"
    pushed = {m.user_id for m in engine.messages(flow="price_drop", channel="push", limit=1000)}
    assert pushed == set(fans) - {gone}

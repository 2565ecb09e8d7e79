"""A rebuild as per-user commands in the log (``growth segments rebuild``, back-fills), on both databases: the
segment stage folds each user's events from before the user's command and goes on with the later ones live, so an
event stored before the rebuild but not yet applied, and one that arrives while the rebuild is pending, each count
exactly once; the rebuild's entries have the origin ``rebuild`` and start no flow."""

from __future__ import annotations

import datetime as dt
from typing import Any

from growthengine.clock import ManualClock, to_us
from growthengine.engine import Engine
from growthengine.segments.feeds import feed_id
from growthengine.segments.model import EventAggregate
from growthengine.segments.rebuild import fold_history
from growthengine.segments.rebuild_commands import rebuild_outcome, rebuild_progress


def _purchase(user: str, n: int, at: dt.datetime, amount: int = 1000) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": "purchase", "messageId": f"{user}-p{n}",
            "timestamp": at.isoformat(), "properties": {"order_id": f"O{user}{n}", "amount": amount,
                                                        "listing_ids": [f"L{n}"]}}


def _purchases_feed(engine: Engine, state: dict[str, Any]) -> dict[str, Any]:
    high_ltv = engine.segments.segments["high_ltv"].condition
    node = next(n for n in high_ltv.items if isinstance(n, EventAggregate) and n.event == "purchase")  # type: ignore[union-attr]
    feed: dict[str, Any] = state.get("f", {}).get(feed_id(node), {})
    return feed


def _feeds(state: dict[str, Any]) -> dict[str, Any]:
    """The feeds, windowed ones (lists in arrival order) sorted."""
    return {fid: sorted(map(str, feed)) if isinstance(feed, list) else feed for fid, feed in state["f"].items()}


def test_a_rebuild_by_commands_counts_every_event_once(any_engine: Engine, clock: ManualClock) -> None:
    engine = any_engine
    now = clock.now()
    assert not engine.ingest([_purchase("u1", n, now - dt.timedelta(hours=n)) for n in range(1, 5)]).rejected
    assert not engine.ingest([_purchase("u2", 1, now, amount=9000)]).rejected
    assert "high_ltv" not in engine.user_view("u1")["segments"]  # type: ignore[index]
    with engine.store.transaction() as tx:  # u1's and u2's segment state is lost; the log is all there is
        for user in ("u1", "u2"):
            tx.segments.delete_state(user)
            tx.segments.delete_user_members(user)
    # Stored but not applied yet (the ingestion service alone does not run the stages), then the rebuild, then a
    # live purchase that arrives while the rebuild waits in the log.
    assert engine.ingestion.ingest([_purchase("u1", 5, now - dt.timedelta(minutes=5))]).accepted == 1
    job = engine.submit_segment_rebuild()
    assert job.users == 2
    assert engine.ingestion.ingest([_purchase("u1", 6, now - dt.timedelta(days=2))]).accepted == 1
    with engine.store.read() as tx:
        assert rebuild_progress(tx, job) == 0
    engine.process_pending()

    with engine.store.read() as tx:
        assert rebuild_progress(tx, job) == job.users
        stored = tx.segments.load_states(["u1", "u2"])
        fresh = {user: state for chunk in fold_history(engine.segments, tx, to_us(clock.now()))
                 for user, state, _ in chunk}
        entered, exited = rebuild_outcome(tx, job)
        u1 = tx.segments.transitions(user_id="u1", segment="high_ltv")
        u2 = tx.segments.transitions(user_id="u2", segment="high_ltv")
    feed = _purchases_feed(engine, stored["u1"])
    assert feed[""]["n"] == 6 and feed[""]["s"] == 6000, "each purchase once: none lost, none applied twice"
    assert feed == _purchases_feed(engine, fresh["u1"])
    assert _feeds(stored["u1"]) == _feeds(fresh["u1"]) and _feeds(stored["u2"]) == _feeds(fresh["u2"])
    # u2 was a member before its state was lost: the rebuild finds it again; u1 entered live with its 6th purchase
    # after the rebuild had found 5 (sum 5000, not > 5000).
    assert [(t.kind, t.origin) for t in u2] == [("enter", "live"), ("enter", "rebuild")]
    assert u2[-1].reason.startswith("rebuild: ")
    assert [(t.kind, t.origin) for t in u1] == [("enter", "live")]
    assert (entered, exited) == (1, 0)
    assert "high_ltv" in engine.user_view("u1")["segments"]  # type: ignore[index]


def test_a_rebuild_of_one_segment_keeps_the_others(any_engine: Engine, clock: ManualClock) -> None:
    engine = any_engine
    now = clock.now()
    engine.ingest([_purchase("u3", 1, now, amount=6000),
                   {"type": "track", "userId": "u3", "event": "add_to_cart", "messageId": "u3-c",
                    "timestamp": (now - dt.timedelta(hours=3)).isoformat(),
                    "properties": {"listing_id": "L9", "title": "Leica M6", "price": 90000}}])
    before = engine.user_view("u3")["segments"]  # type: ignore[index]
    assert {"high_ltv", "cart_abandoners"} <= set(before)
    with engine.store.transaction() as tx:
        tx.segments.delete_state("u3")
        tx.segments.delete_user_members("u3")
    engine.submit_segment_rebuild(["cart_abandoners"])
    engine.process_pending()
    after = engine.user_view("u3")["segments"]  # type: ignore[index]
    assert "cart_abandoners" in after and "high_ltv" not in after

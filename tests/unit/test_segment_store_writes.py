"""A pass's memberships and transitions written together (``SegmentStore.write_changes``): the data an entry's
membership and transition share is encoded once, and what is stored is what the separate writes stored."""

from __future__ import annotations

from growthengine.engine import Engine
from growthengine.storage.segment_store import Membership, Transition


def test_write_changes_stores_what_separate_writes_store(any_engine: Engine) -> None:
    shared = {"listing_id": "L1", "title": "เสื้อยืดวินเทจ 90s", "at_us": 5}
    other = {"listing_id": "L2", "at_us": 6}
    with any_engine.store.transaction() as tx:
        tx.segments.upsert_members([Membership("cart_abandoners", "u2", "L9", 1, {"old": True}, "was in")])
        tx.segments.write_changes(
            [("cart_abandoners", "u2", "L9")],
            [Membership("cart_abandoners", "u1", "L1", 10, shared, "in"),
             Membership("cart_abandoners", "u1", "L2", 11, other, "in too")],
            [Transition("cart_abandoners", "u1", "L1", "enter", 10, "in", shared, 7),
             Transition("cart_abandoners", "u2", "L9", "exit", 10, "out", {"old": True}, None, "rebuild"),
             Transition("cart_abandoners", "u1", "L2", "enter", 11, "in too", dict(other), 8)])
    with any_engine.store.transaction() as tx:
        members = tx.segments.members_of_user("u1") + tx.segments.members_of_user("u2")
        transitions = tx.segments.transitions(segment="cart_abandoners")
    assert [(m.user_id, m.entity, m.since_us, m.data, m.reason) for m in members] == [
        ("u1", "L1", 10, shared, "in"), ("u1", "L2", 11, other, "in too")]
    assert [(t.user_id, t.entity, t.kind, t.data, t.event_us, t.origin) for t in transitions] == [
        ("u1", "L1", "enter", shared, 7, "live"), ("u2", "L9", "exit", {"old": True}, 10, "rebuild"),
        ("u1", "L2", "enter", other, 8, "live")]

"""The stored document of a state held in memory (segments/state_document.py) is the state's own JSON, byte for byte,
whatever happened to the state since the last write: events folded in (in and out of order), windows and carts
pruned, memberships replaced, feeds dropped, timers booked. Only the parts that changed are encoded again."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from growthengine.domain.events import Event
from growthengine.segments.feeds import FeedPlan, State, apply_event, prune, prune_specs
from growthengine.segments.model import Compare, EventAggregate, Pattern, Segment
from growthengine.segments.state_document import SHORT_WINDOW, StateDocuments

MIN = 60_000_000
DAY = 24 * 60 * MIN
NOW = 20_000 * DAY
SEGMENTS = [
    Segment("views", "V", "hourly", EventAggregate("item_viewed", "count", Compare("gt", 20), within_us=DAY)),
    Segment("spend", "S", "realtime", EventAggregate("purchase", "sum", Compare("gt", 500), of="amount")),
    Segment("cart", "C", "realtime", Pattern("add_to_cart", ("purchase", "remove_from_cart"), within_us=60 * MIN,
                                             same="listing_id", leaves_after_us=2 * DAY)),
]
PLAN = FeedPlan.build(SEGMENTS)
SPECS = prune_specs(SEGMENTS)

steps = st.lists(st.one_of(
    st.tuples(st.just("event"), st.sampled_from(["item_viewed", "item_viewed", "purchase", "add_to_cart",
                                                 "remove_from_cart"]),
              st.integers(0, 3 * DAY), st.sampled_from(["L0", "L1", "L2"]), st.integers(1, 40)),
    st.tuples(st.just("prune"), st.integers(0, 3 * DAY)),
    st.tuples(st.just("member"), st.sampled_from(["views", "cart"]), st.booleans()),
    st.tuples(st.just("timer"), st.sampled_from(["views", "cart"]), st.integers(0, DAY)),
    st.tuples(st.just("write")),
    st.tuples(st.just("forget")),
), max_size=60)


def _event(name: str, back: int, listing: str, seq: int) -> Event:
    return Event(user_id="u1", name=name, ts_us=NOW - back, id=seq,
                 properties={"listing_id": listing, "listing_ids": [listing], "amount": 120, "title": "เสื้อยืด"})


@settings(max_examples=300, deadline=None)
@given(steps=steps, repeat=st.integers(1, SHORT_WINDOW + 3))
# A cart item pruned while another stays; a window pruned after it grew past the short ones.
@example(steps=[("event", "add_to_cart", 3 * DAY, "L0", 1), ("event", "add_to_cart", 0, "L1", 2), ("prune", 0)],
         repeat=1)
@example(steps=[("event", "item_viewed", 2 * DAY, "L0", 1), ("event", "item_viewed", 0, "L0", 50), ("prune", 0),
                ("event", "item_viewed", 0, "L0", 90)], repeat=SHORT_WINDOW + 3)
def test_the_document_is_the_states_own_json_after_any_changes(steps: list[tuple[Any, ...]], repeat: int) -> None:
    documents = StateDocuments()
    documents.replaced_feeds = PLAN.pattern_feeds
    state: State = {}
    for step in steps:
        if step[0] == "event":
            for i in range(repeat if step[1] == "item_viewed" else 1):
                apply_event(state, _event(step[1], step[2] + i, step[3], step[4] + i), PLAN, "Asia/Bangkok")
        elif step[0] == "prune":
            prune(state, PLAN, SEGMENTS, NOW + step[1])
        elif step[0] == "member":
            members = state.setdefault("m", {})
            if step[2]:
                members[step[1]] = {"": [NOW, {"n": len(members)}]}  # replaced whole, as the engine does
            else:
                members.pop(step[1], None)
        elif step[0] == "timer":
            state.setdefault("t", {})[step[1]] = NOW + step[2]
        elif step[0] == "forget":
            documents.forget(None)
        assert orjson.dumps(documents.view("u1", state)) == orjson.dumps(state)
        assert orjson.dumps(documents.document("u1", state)) == orjson.dumps(state)


def test_an_unchanged_part_is_not_encoded_again_and_a_grown_window_only_by_its_new_entries() -> None:
    documents = StateDocuments()
    documents.replaced_feeds = PLAN.pattern_feeds
    state: State = {}
    for i in range(SHORT_WINDOW + 4):
        apply_event(state, _event("item_viewed", i * MIN, "L0", i + 1), PLAN, "Asia/Bangkok")
    apply_event(state, _event("add_to_cart", 0, "L1", 100), PLAN, "Asia/Bangkok")
    state["m"] = {"cart": {"L1": [NOW, {"listing_id": "L1"}]}}
    first = documents.view("u1", state)
    second = documents.view("u1", state)
    window = next(fid for fid, feed in state["f"].items() if isinstance(feed, list))
    cart = next(fid for fid, feed in state["f"].items() if isinstance(feed, dict) and "L1" in feed)
    assert second["m"]["cart"] is first["m"]["cart"]
    assert second["f"][window] is first["f"][window]
    assert second["f"][cart] is first["f"][cart]
    apply_event(state, _event("item_viewed", 0, "L0", 200), PLAN, "Asia/Bangkok")
    third = documents.view("u1", state)
    assert third["f"][window] is not first["f"][window]
    assert third["f"][cart] is first["f"][cart]
    assert orjson.dumps(third) == orjson.dumps(state)
    apply_event(state, _event("purchase", 0, "L1", 201), PLAN, "Asia/Bangkok")  # closes the cart item
    fourth = documents.view("u1", state)
    assert fourth["f"][cart] is not first["f"][cart]
    assert orjson.dumps(fourth) == orjson.dumps(state)
    documents.forget(["u1"])
    assert len(documents) == 0

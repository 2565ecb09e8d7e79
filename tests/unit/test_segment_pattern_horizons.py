"""Pruning with kept pattern horizons (segments/pattern_horizons.py) leaves every state exactly as pruning every
feed every time does (feeds.prune_feeds), over random interleavings of events and prunes at moving instants, with
feeds large enough to keep a horizon; and a feed that cannot have anything to forget is not walked again."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from growthengine.domain.events import Event
from growthengine.segments import pattern_horizons
from growthengine.segments.feeds import FeedPlan, State, apply_event, feed_id, prune_feeds, prune_specs
from growthengine.segments.model import Compare, EventAggregate, Pattern, Segment
from growthengine.segments.pattern_horizons import HORIZON_ENTITIES, Horizons, prune_user_feeds

MIN = 60_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
NOW = 20_000 * DAY
PATTERN = Pattern("add_to_cart", ("purchase", "remove_from_cart"), within_us=HOUR, same="listing_id",
                  leaves_after_us=2 * DAY)
SEGMENTS = [Segment("carts", "Carts", "realtime", PATTERN),
            Segment("views", "Views", "hourly",
                    EventAggregate("item_viewed", "count", Compare("gt", 2), within_us=DAY))]
LISTINGS = [f"L{i}" for i in range(HORIZON_ENTITIES + 4)]

steps = st.lists(st.one_of(
    st.tuples(st.just("event"), st.sampled_from(["add_to_cart", "purchase", "remove_from_cart", "item_viewed"]),
              st.integers(min_value=-3 * DAY, max_value=HOUR), st.sampled_from(LISTINGS)),
    st.tuples(st.just("prune"), st.just(""), st.integers(min_value=0, max_value=3 * HOUR), st.just(""))),
    min_size=1, max_size=60)


def _event(name: str, at: int, listing: str, seq: int) -> Event:
    return Event(user_id="u1", name=name, ts_us=at, id=seq,
                 properties={"listing_id": listing, "listing_ids": [listing], "price": 290})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=steps, seed_items=st.integers(min_value=0, max_value=len(LISTINGS)))
def test_pruning_with_kept_horizons_leaves_the_state_as_pruning_every_feed(
        history: list[tuple[str, str, int, str]], seed_items: int) -> None:
    plan = FeedPlan.build(SEGMENTS)
    specs = prune_specs(SEGMENTS)
    walked: State = {}
    kept: State = {}
    horizons: Horizons = {}
    now = NOW
    for listing in LISTINGS[:seed_items]:  # open items early enough to be forgotten as time moves on
        for state in (walked, kept):
            apply_event(state, _event("add_to_cart", NOW - 2 * DAY + MIN, listing, 1), plan, "Asia/Bangkok")
    for seq, (what, name, offset, listing) in enumerate(history, start=2):
        if what == "event":
            for state in (walked, kept):
                apply_event(state, _event(name, now + offset, listing, seq), plan, "Asia/Bangkok")
        else:
            now += offset
        prune_feeds(walked, list(walked.get("f", ())), specs, now)
        prune_user_feeds(kept, specs, now, horizons)
        assert kept == walked


def test_a_large_feed_with_nothing_to_forget_is_not_walked_again_until_it_changes_or_time_reaches_it(
        monkeypatch: Any) -> None:
    plan = FeedPlan.build(SEGMENTS)
    specs = prune_specs(SEGMENTS)
    state: State = {}
    for seq, listing in enumerate(LISTINGS, start=1):
        apply_event(state, _event("add_to_cart", NOW + seq, listing, seq), plan, "Asia/Bangkok")
    walks: list[int] = []
    real = pattern_horizons.prune_pattern

    def counted(feeds: dict[str, Any], fid: str, leaves_after_us: int, now_us: int) -> None:
        walks.append(now_us)
        real(feeds, fid, leaves_after_us, now_us)

    monkeypatch.setattr(pattern_horizons, "prune_pattern", counted)
    horizons: Horizons = {}
    prune_user_feeds(state, specs, NOW + HOUR, horizons)
    prune_user_feeds(state, specs, NOW + 2 * HOUR, horizons)
    assert len(walks) == 1  # the second prune had nothing to forget: no walk
    apply_event(state, _event("purchase", NOW + 3 * HOUR, "L0", 99), plan, "Asia/Bangkok")
    prune_user_feeds(state, specs, NOW + 3 * HOUR, horizons)
    assert len(walks) == 2  # the feed changed: walked again
    prune_user_feeds(state, specs, NOW + 2 * DAY + 2, horizons)  # the earliest opening (NOW + 1) leaves now
    assert len(walks) == 3
    fid = feed_id(PATTERN)
    assert "L1" not in state["f"][fid]  # its opening (NOW + 2) left, and nothing else was kept of it
    assert state["f"][fid]["L0"]["f"] == []  # its opening left; its later closing stays while it could matter
    assert all(slot["f"][0][0] > NOW + 2 for slot in state["f"][fid].values() if slot["f"])

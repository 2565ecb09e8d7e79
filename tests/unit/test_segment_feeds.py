"""What the segment rules remember about a user's events (segments/feeds.py): comparisons, property filters, the
entity an event is about, local days, which feeds an event updates, the state document it folds into, and pruning.

The state is the JSON document the segment engine stores per user (its shape is in the module's docstring)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from growthengine.domain.events import Event
from growthengine.segments.feeds import (
    LAST_AT_INSTANT,
    FeedPlan,
    State,
    apply_event,
    closing_order,
    compare,
    entity_ids,
    feed_id,
    local_day,
    matches,
    opening_order,
    prune,
    walk,
)
from growthengine.segments.model import (
    ActiveDays,
    All,
    AnyOf,
    Compare,
    Condition,
    EventAggregate,
    Inactive,
    Not,
    Pattern,
    PropertyFilter,
    Segment,
    TraitCondition,
)

HOUR = 3_600_000_000
DAY = 24 * HOUR
NOW = 20_000 * DAY  # 2024-10-04 00:00 UTC, 07:00 in Bangkok
CART = Pattern("add_to_cart", ("purchase", "remove_from_cart"), within_us=HOUR, same="listing_id",
               leaves_after_us=7 * DAY)
VIEWS_7D = EventAggregate("item_viewed", "count", Compare("gte", 3), within_us=7 * DAY)
SPEND = EventAggregate("purchase", "sum", Compare("gt", 1000), of="price")


def seg(key: str, condition: Condition) -> Segment:
    return Segment(key, key, "realtime", condition)


def ev(name: str, ts: int, type: str = "track", **properties: Any) -> Event:
    return Event(user_id="u1", name=name, ts_us=ts, type=type, properties=properties)


def fold(condition: Condition, events: Iterable[Event], tz: str = "Asia/Bangkok") -> State:
    plan = FeedPlan.build([seg("s", condition)])
    state: State = {}
    for event in events:
        apply_event(state, event, plan, tz)
    return state


# compare ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "op", "operand", "expected"), [
    (5, "eq", 5, True), (5, "eq", 6, False), (None, "eq", None, True),
    (5, "ne", 5, False), (5, "ne", 6, True), (None, "ne", 6, True),
    (None, "exists", True, False), (0, "exists", True, True),
    (None, "exists", False, True), (0, "exists", False, False),
    (6, "gt", 5, True), (5, "gt", 5, False), (None, "gt", -1, False),
    (5, "gte", 5, True), (4, "gte", 5, False), (None, "gte", -1, False),
    (4, "lt", 5, True), (5, "lt", 5, False), (None, "lt", 5, False),
    (5, "lte", 5, True), (6, "lte", 5, False), (None, "lte", 5, False),
    ("cameras", "in", ["cameras", "bags"], True), ("shoes", "in", ["cameras"], False), (None, "in", [None], False),
    ("shoes", "not_in", ["cameras"], True), ("cameras", "not_in", ["cameras"], False), (None, "not_in", ["x"], False),
    ("vintage camera", "contains", "camera", True), ("lens", "contains", "camera", False),
    (["L1", "L2"], "contains", "L2", True), (["L1"], "contains", "L2", False),
    ({"L1": 1}, "contains", "L1", True), (1234, "contains", 2, False), (None, "contains", "x", False),
    ("abc", "gt", 1, False), ("abc", "contains", ["a"], False), (5, "in", 5, False),
    (5, "between", [1, 9], False), (None, "between", [1, 9], False),
])
def test_compare(value: Any, op: str, operand: Any, expected: bool) -> None:
    assert compare(value, Compare(op, operand)) is expected  # type: ignore[arg-type]


def test_property_filters_all_have_to_match_and_a_missing_property_is_none() -> None:
    filters = (PropertyFilter("category", Compare("eq", "cameras")), PropertyFilter("price", Compare("gt", 1000)))
    assert matches({"category": "cameras", "price": 1001}, filters) is True
    assert matches({"category": "cameras", "price": 1000}, filters) is False
    assert matches({"category": "bags", "price": 5000}, filters) is False
    assert matches({"category": "cameras"}, filters) is False
    assert matches({}, (PropertyFilter("price", Compare("exists", False)),)) is True
    assert matches({"price": 1}, ()) is True


# The entity an event is about ------------------------------------------------------------------------------------


def test_the_entity_is_the_property_itself_or_each_item_of_its_plural() -> None:
    assert entity_ids({"listing_id": "L1", "listing_ids": ["L2"]}, "listing_id") == ["L1"]
    assert entity_ids({"listing_id": 0}, "listing_id") == ["0"]
    assert entity_ids({"listing_ids": ["L1", 2, None, ["L3"], {"id": "L4"}, "L5"]}, "listing_id") == ["L1", "2", "L5"]
    assert entity_ids({"listing_id": None, "listing_ids": ["L2"]}, "listing_id") == ["L2"]
    assert entity_ids({"listing_id": ["L1"], "listing_ids": ["L2"]}, "listing_id") == ["L2"]
    assert entity_ids({"listing_id": {"id": "L1"}}, "listing_id") == []
    assert entity_ids({"listing_ids": "L1"}, "listing_id") == []
    assert entity_ids({}, "listing_id") == []


# Local days -------------------------------------------------------------------------------------------------------


@pytest.fixture
def server_in_new_york() -> Iterator[None]:
    """The machine's own zone must not matter: local days are in the user's zone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "America/New_York")
        time.tzset()
        yield
    time.tzset()


def test_a_local_day_is_the_calendar_day_in_the_users_zone(server_in_new_york: None) -> None:
    late_evening_utc = NOW - 6 * HOUR  # 2024-10-03 18:00 UTC: 01:00 on the 4th in Bangkok, 14:00 on the 3rd in NY
    assert local_day(late_evening_utc, "Asia/Bangkok") == 739163
    assert local_day(late_evening_utc, "UTC") == 739162
    assert local_day(late_evening_utc, "America/Los_Angeles") == 739162
    assert local_day(NOW - 8 * HOUR, "Asia/Bangkok") == 739162  # 23:00 on the 3rd in Bangkok
    assert local_day(NOW - 11 * HOUR, "Asia/Bangkok") == 739162  # 20:00 on the 3rd in Bangkok, 09:00 in NY
    assert local_day(NOW - 2 * HOUR, "UTC") == 739162
    assert local_day(late_evening_utc, "Mars/Olympus") == 739163, "an unknown zone is the business zone, Bangkok"
    assert local_day(0, "UTC") == 719163  # 1970-01-01


# Which feeds an event updates --------------------------------------------------------------------------------------


def test_the_plan_names_each_rule_once_by_event_and_each_pattern_by_its_first_and_closing_events() -> None:
    other_views = EventAggregate("item_viewed", "distinct", Compare("gte", 2), of="category", within_us=DAY)
    plan = FeedPlan.build([
        seg("a", All((VIEWS_7D, Not(CART)))),
        seg("b", AnyOf((VIEWS_7D, other_views, TraitCondition("x", Compare("eq", 1))))),
        seg("c", CART),
        seg("d", SPEND),
    ])
    assert plan.aggregates == {"item_viewed": [(feed_id(VIEWS_7D), VIEWS_7D), (feed_id(other_views), other_views)],
                               "purchase": [(feed_id(SPEND), SPEND)]}
    assert plan.patterns == {"add_to_cart": [(feed_id(CART), CART, "first")],
                             "purchase": [(feed_id(CART), CART, "close")],
                             "remove_from_cart": [(feed_id(CART), CART, "close")]}
    assert plan.feed_ids == frozenset({feed_id(VIEWS_7D), feed_id(other_views), feed_id(CART), feed_id(SPEND)})
    assert plan.activity_window_us == 0


def test_the_plan_keeps_activity_days_for_the_longest_active_days_window() -> None:
    short, long = ActiveDays(Compare("gte", 2), 3 * DAY), ActiveDays(Compare("gte", 5), 14 * DAY)
    assert FeedPlan.build([seg("a", short), seg("b", Not(long))]).activity_window_us == 14 * DAY
    assert FeedPlan.build([seg("b", long), seg("a", AnyOf((short,)))]).activity_window_us == 14 * DAY


def test_walk_visits_every_node_depth_first() -> None:
    trait = TraitCondition("x", Compare("eq", 1))
    tree = All((Not(AnyOf((VIEWS_7D, trait))), CART))
    assert list(walk(tree)) == [tree, tree.items[0], tree.items[0].item, VIEWS_7D, trait, CART]  # type: ignore[union-attr]


# Folding events into the state -----------------------------------------------------------------------------------


def test_activity_keeps_the_latest_time_whatever_the_order_and_identify_calls_are_not_activity() -> None:
    state = fold(Inactive(DAY), [ev("app_opened", NOW - HOUR), ev("item_viewed", NOW - 3 * HOUR),
                                 ev("identify", NOW, type="identify"), ev("page", NOW - 2 * HOUR, type="page")])
    assert state["a"] == {"last": NOW - HOUR, "days": {}}, "no active-days rule: no days kept"
    assert fold(Inactive(DAY), [ev("identify", NOW, type="identify")]) == {"f": {}}


def test_activity_days_keep_the_latest_time_per_local_day() -> None:
    rule = ActiveDays(Compare("gte", 2), 7 * DAY)
    state = fold(rule, [ev("app_opened", NOW - 6 * HOUR), ev("app_opened", NOW - 5 * HOUR),
                        ev("app_opened", NOW - 6 * HOUR + 1), ev("screen", NOW - 8 * HOUR, type="screen"),
                        ev("app_opened", NOW - 7 * HOUR), ev("app_opened", NOW - 9 * HOUR)])
    # 17:00 UTC is midnight in Bangkok: NOW - 7 h is on the 4th there, NOW - 8 h and NOW - 9 h on the 3rd
    assert state["a"] == {"last": NOW - 5 * HOUR, "days": {"739163": NOW - 5 * HOUR, "739162": NOW - 8 * HOUR}}
    assert fold(rule, [ev("app_opened", NOW - 6 * HOUR)], tz="UTC")["a"]["days"] == {"739162": NOW - 6 * HOUR}
    assert fold(rule, [ev("app_opened", 0)], tz="UTC")["a"] == {"last": 0, "days": {"719163": 0}}


def test_a_windowed_rule_remembers_each_matching_event_with_its_value_and_group() -> None:
    rule = EventAggregate("purchase", "sum", Compare("gt", 0), of="price", within_us=DAY, per="province",
                          where=(PropertyFilter("category", Compare("eq", "cameras")),))
    state = fold(rule, [ev("purchase", 1, category="cameras", price=100, province="Bangkok"),
                        ev("purchase", 2, category="bags", price=200, province="Bangkok"),
                        ev("purchase", 3, category="cameras", price=300),
                        ev("purchase", 4, category="cameras", price=400, province=10),
                        ev("item_viewed", 5, category="cameras", price=500, province="Bangkok")])
    assert state["f"] == {feed_id(rule): [[1, 100, "Bangkok"], [4, 400, "10"]]}


def test_an_event_feeds_every_rule_on_it_whose_filter_it_passes() -> None:
    cameras = EventAggregate("purchase", "count", Compare("gt", 0), within_us=DAY,
                             where=(PropertyFilter("category", Compare("eq", "cameras")),))
    bags = EventAggregate("purchase", "count", Compare("gt", 0), within_us=DAY,
                          where=(PropertyFilter("category", Compare("eq", "bags")),))
    state = fold(AnyOf((cameras, bags, SPEND)), [ev("purchase", 9, category="bags", price=300)])
    assert state["f"] == {feed_id(bags): [[9, 1, None]], feed_id(SPEND): {"": {"n": 1, "s": 300, "d": [], "l": 9}}}


@pytest.mark.parametrize(("price", "value"), [
    (250, 250), (99.5, 99.5), ("120.5", 120.5), ("free", 0), (True, 0), (None, 0), ([5], 0)])
def test_a_sum_takes_numbers_and_numeric_text_and_counts_anything_else_as_zero(price: Any, value: float) -> None:
    rule = EventAggregate("purchase", "sum", Compare("gt", 0), of="price", within_us=DAY)
    state = fold(rule, [ev("purchase", 7, price=price)])
    assert state["f"][feed_id(rule)] == [[7, value, None]]
    assert type(state["f"][feed_id(rule)][0][1]) is type(value)


def test_distinct_remembers_the_value_as_text_and_count_and_last_remember_one() -> None:
    distinct = EventAggregate("item_viewed", "distinct", Compare("gt", 0), of="category", within_us=DAY)
    assert fold(distinct, [ev("item_viewed", 1, category=7), ev("item_viewed", 2)])["f"][feed_id(distinct)] == \
        [[1, "7", None], [2, None, None]]
    count = EventAggregate("item_viewed", "count", Compare("gt", 0), within_us=DAY)
    last = EventAggregate("item_viewed", "last", Compare("gt", 0), within_us=DAY)
    assert fold(count, [ev("item_viewed", 1, category=7)])["f"][feed_id(count)] == [[1, 1, None]]
    assert fold(last, [ev("item_viewed", 1, category=7)])["f"][feed_id(last)] == [[1, 1, None]]


def test_a_lifetime_rule_keeps_a_running_count_sum_distinct_values_and_latest_time_per_group() -> None:
    spend = EventAggregate("purchase", "sum", Compare("gt", 0), of="price")
    events = [ev("purchase", 30, price=100, seller="s1"), ev("purchase", 10, price=50, seller="s1"),
              ev("purchase", 20, price=7, seller="s2")]
    assert fold(spend, events)["f"][feed_id(spend)] == {"": {"n": 3, "s": 157, "d": [], "l": 30}}
    per_seller = EventAggregate("purchase", "distinct", Compare("gt", 0), of="price", per="seller")
    assert fold(per_seller, [*events, ev("purchase", 5, price=100, seller="s1"), ev("purchase", 40, seller="s2")]
                )["f"][feed_id(per_seller)] == {"s1": {"n": 3, "s": 0, "d": ["100", "50"], "l": 30},
                                                "s2": {"n": 2, "s": 0, "d": ["7"], "l": 40}}
    count = EventAggregate("purchase", "count", Compare("gt", 0))
    assert fold(count, [ev("purchase", 0)])["f"][feed_id(count)] == {"": {"n": 1, "s": 0, "d": [], "l": 0}}


def test_a_pattern_remembers_first_events_with_their_properties_and_closing_times_per_entity() -> None:
    state = fold(CART, [ev("add_to_cart", 10, listing_id="L1", price=5), ev("purchase", 20, listing_ids=["L1", "L2"]),
                        ev("remove_from_cart", 30, listing_id="L3"), ev("add_to_cart", 40, listing_id="L1"),
                        ev("add_to_cart", 50, price=9)])
    assert state["f"][feed_id(CART)] == {
        "L1": {"f": [[10, {"listing_id": "L1", "price": 5}, 0], [40, {"listing_id": "L1"}, 0]],
               "c": [[20, LAST_AT_INSTANT]]},
        "L2": {"f": [], "c": [[20, LAST_AT_INSTANT]]},
        "L3": {"f": [], "c": [[30, LAST_AT_INSTANT]]},
    }


# Pruning -----------------------------------------------------------------------------------------------------------


def test_prune_drops_window_entries_at_or_before_the_cutoff_and_feeds_no_rule_uses() -> None:
    segments = [seg("s", VIEWS_7D)]
    state = fold(VIEWS_7D, [ev("item_viewed", NOW - 7 * DAY), ev("item_viewed", NOW - 7 * DAY + 1)])
    state["f"]["0ld0ld0ld0"] = [[1, 1, None]]
    prune(state, FeedPlan.build(segments), segments, NOW)
    assert state["f"] == {feed_id(VIEWS_7D): [[NOW - 7 * DAY + 1, 1, None]]}
    prune(state, FeedPlan.build(segments), segments, NOW + 1)
    assert state["f"] == {feed_id(VIEWS_7D): []}


def test_prune_keeps_lifetime_feeds_whole() -> None:
    segments = [seg("s", SPEND)]
    state = fold(SPEND, [ev("purchase", 1, price=5)])
    prune(state, FeedPlan.build(segments), segments, NOW)
    assert state["f"] == {feed_id(SPEND): {"": {"n": 1, "s": 5, "d": [], "l": 1}}}


def test_prune_forgets_first_events_once_they_have_left_and_closers_no_late_opening_could_precede() -> None:
    segments = [seg("s", All((CART, Inactive(DAY))))]
    added = NOW - 7 * DAY
    state = fold(CART, [ev("purchase", added - 1, listing_ids=["L1"]), ev("add_to_cart", added, listing_id="L1"),
                        ev("purchase", added + 1, listing_ids=["L1"]), ev("add_to_cart", added + 2, listing_id="L1"),
                        ev("add_to_cart", added, listing_id="L2"), ev("remove_from_cart", added + 5, listing_id="L3")])
    prune(state, FeedPlan.build(segments), segments, NOW + 1)
    # A closer stays while an opening before it could still arrive late and count (event time, not arrival).
    assert state["f"][feed_id(CART)] == {"L1": {"f": [[added + 2, {"listing_id": "L1"}, 0]], "c": []},
                                         "L3": {"f": [], "c": [[added + 5, LAST_AT_INSTANT]]}}
    state = fold(CART, [ev("add_to_cart", added, listing_id="L1")])
    prune(state, FeedPlan.build(segments), segments, NOW)
    assert state["f"][feed_id(CART)] == {}, "an item leaves at exactly its stay, so it is forgotten then"
    state = fold(CART, [ev("purchase", added - 1, listing_ids=["L1"]), ev("add_to_cart", added, listing_id="L1"),
                        ev("purchase", added, listing_ids=["L1"])])
    prune(state, FeedPlan.build(segments), segments, NOW - 1)
    assert state["f"][feed_id(CART)] == {"L1": {"f": [[added, {"listing_id": "L1"}, 0]],
                                                "c": [[added, LAST_AT_INSTANT]]}}


def test_prune_skips_a_pattern_without_entries_and_goes_on_with_the_other_rules() -> None:
    segments = [seg("p", All((CART, VIEWS_7D)))]
    state: State = {"f": {feed_id(CART): {}, feed_id(VIEWS_7D): [[NOW - 8 * DAY, 1, None], [NOW, 1, None]]}}
    prune(state, FeedPlan.build(segments), segments, NOW)
    assert state == {"f": {feed_id(CART): {}, feed_id(VIEWS_7D): [[NOW, 1, None]]}}
    empty: State = {}
    prune(empty, FeedPlan.build(segments), segments, NOW)
    assert empty == {}


def test_prune_keeps_activity_days_inside_the_longest_window_before_the_last_activity() -> None:
    segments = [seg("s", ActiveDays(Compare("gte", 2), 2 * DAY))]
    last = NOW - 10 * DAY
    state = fold(segments[0].condition, [ev("app_opened", last - 3 * DAY + HOUR), ev("app_opened", last - 2 * DAY),
                                         ev("app_opened", last - DAY + HOUR), ev("app_opened", last)], tz="UTC")
    assert len(state["a"]["days"]) == 4
    prune(state, FeedPlan.build(segments), segments, NOW)
    assert state["a"] == {"last": last, "days": {str(local_day(last - DAY, "UTC")): last - DAY + HOUR,
                                                 str(local_day(last, "UTC")): last}}
    without_days = [seg("s", Inactive(DAY))]
    kept: State = {"a": {"last": last, "days": {"1": 1}}, "f": {}}
    prune(kept, FeedPlan.build(without_days), without_days, NOW)
    assert kept["a"]["days"] == {"1": 1}
    nothing: State = {"a": {"last": None, "days": {"1": 1}}, "f": {}}
    prune(nothing, FeedPlan.build(segments), segments, NOW)
    assert nothing["a"]["days"] == {"1": 1}


def test_an_opening_and_a_closing_event_stand_in_event_time_then_in_arrival_order() -> None:
    assert opening_order([500, {"listing_id": "L1"}, 7]) == (500, 7)
    assert opening_order([500, {"listing_id": "L1"}]) == (500, 0), "stored before sequences: first at its instant"
    assert closing_order([500, 7]) == (500, 7)
    assert closing_order(500) == (500, LAST_AT_INSTANT), "a bare ts: stored before sequences, last at its instant"


@pytest.mark.parametrize("tz", ["Asia/Bangkok", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe",
                                "Europe/London", "Pacific/Chatham"])
def test_the_local_day_of_an_instant_is_its_calendar_day_in_the_zone_across_offset_changes(tz: str) -> None:
    import datetime as dt
    import zoneinfo

    from growthengine.segments.feeds import local_day

    zone = zoneinfo.ZoneInfo(tz)
    start = int(dt.datetime(2025, 3, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000
    step = 37 * 60_000_000 + 11  # every 37 minutes for a year: through both changes of offset, in and out of order
    instants = [start + i * step for i in range(365 * 24 * 60 // 37)]
    for ts in instants + instants[::-7]:
        expected = (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts)).astimezone(zone)
        assert local_day(ts, tz) == expected.date().toordinal(), ts


def test_a_window_keeps_its_entries_in_time_order_whatever_the_arrival_order_and_prunes_from_its_start() -> None:
    segments = [seg("s", VIEWS_7D)]
    plan = FeedPlan.build(segments)
    times = [NOW - 3 * DAY, NOW - 8 * DAY, NOW - DAY, NOW - 8 * DAY, NOW - 5 * DAY, NOW - DAY]
    state: State = {}
    for i, ts in enumerate(times):
        apply_event(state, Event(user_id="u1", name="item_viewed", ts_us=ts, id=i + 1), plan, "Asia/Bangkok")
    window = state["f"][feed_id(VIEWS_7D)]
    assert [e[0] for e in window] == sorted(times)
    prune(state, plan, segments, NOW)
    assert [e[0] for e in state["f"][feed_id(VIEWS_7D)]] == sorted(t for t in times if t > NOW - 7 * DAY)


def test_a_window_stored_out_of_order_is_put_in_order_when_read_back() -> None:
    from growthengine.segments.feeds import read_back

    segments = [seg("s", VIEWS_7D)]
    plan = FeedPlan.build(segments)
    state: State = {"f": {feed_id(VIEWS_7D): [[NOW - DAY, 1, None], [NOW - 9 * DAY, 1, None], [NOW - DAY, 2, None]],
                          "0ld0ld0ld0": [[1, 1, None]]}}
    read_back(state, plan)
    assert state["f"] == {feed_id(VIEWS_7D): [[NOW - 9 * DAY, 1, None], [NOW - DAY, 1, None], [NOW - DAY, 2, None]]}
    prune(state, plan, segments, NOW)
    assert state["f"][feed_id(VIEWS_7D)] == [[NOW - DAY, 1, None], [NOW - DAY, 2, None]]

"""Segment rules evaluated at an instant (segments/evaluate.py): the verdict, its reason (what `growth segments show`
and the API tell a marketer), when the answer could next change without a new event, and what a member keeps.

The user's state is folded from real events by the real feeds (segments/feeds.py), as the segment engine does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from growthengine.domain.events import Event
from growthengine.segments.evaluate import Evaluator, Verdict
from growthengine.segments.feeds import FeedPlan, State, apply_event
from growthengine.segments.model import (
    ActiveDays,
    All,
    AnyOf,
    Compare,
    Condition,
    EventAggregate,
    Inactive,
    InSegment,
    Not,
    Pattern,
    Segment,
    TraitCondition,
)

MIN = 60_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
NOW = 20_000 * DAY  # 2024-10-04 00:00 UTC
CART = Pattern("add_to_cart", ("purchase", "remove_from_cart"), within_us=HOUR, same="listing_id",
               leaves_after_us=7 * DAY)
SELLER = TraitCondition("is_seller", Compare("eq", True))
THAI = TraitCondition("locale", Compare("eq", "th"))


def ev(name: str, ts: int, **properties: Any) -> Event:
    return Event(user_id="u1", name=name, ts_us=ts, properties=properties)


def state_of(condition: Condition, events: Iterable[Event]) -> State:
    plan = FeedPlan.build([Segment("s", "S", "realtime", condition)])
    state: State = {}
    for event in events:
        apply_event(state, event, plan, "Asia/Bangkok")
    return state


def judge(condition: Condition, events: Iterable[Event] = (), traits: dict[str, Any] | None = None,
          now: int = NOW, state: State | None = None) -> Verdict:
    evaluator = Evaluator(traits or {}, state if state is not None else state_of(condition, events), now)
    evaluator.segment(Segment("s", "S", "realtime", condition))
    return evaluator.last_verdict


def facets(condition: Condition, events: Iterable[Event] = (), traits: dict[str, Any] | None = None,
           now: int = NOW) -> dict[str, dict[str, Any]]:
    return Evaluator(traits or {}, state_of(condition, events), now).segment(Segment("s", "S", "realtime", condition))


def summary(verdict: Verdict) -> tuple[bool, str, int | None]:
    return verdict.value, verdict.reason, verdict.next_us


# Traits and other segments ------------------------------------------------------------------------------------


def test_a_trait_condition_names_the_trait_its_value_and_the_rule() -> None:
    assert summary(judge(SELLER, traits={"is_seller": True})) == (True, "is_seller = True = True", None)
    assert summary(judge(SELLER)) == (False, "is_seller = None = True", None)
    assert summary(judge(THAI, traits={"locale": "en"})) == (False, "locale = 'en' = th", None)


def test_membership_of_another_segment_is_read_from_the_users_memberships() -> None:
    rule = InSegment("high_ltv")
    assert summary(judge(rule, state={"m": {"high_ltv": {"": [1, {}]}}})) == (True, "in segment high_ltv", None)
    assert summary(judge(rule, state={"m": {"churn_risk": {"": [1, {}]}, "high_ltv": {}}})) == \
        (False, "not in segment high_ltv", None)
    assert summary(judge(rule, state={})) == (False, "not in segment high_ltv", None)


# Combinations -------------------------------------------------------------------------------------------------


def test_all_holds_only_when_every_part_holds_and_joins_the_reasons_with_and() -> None:
    both = All((SELLER, THAI))
    assert summary(judge(both, traits={"is_seller": True, "locale": "th"})) == \
        (True, "is_seller = True = True and locale = 'th' = th", None)
    assert summary(judge(both, traits={"is_seller": True, "locale": "en"})) == \
        (False, "is_seller = True = True and locale = 'en' = th", None)
    assert judge(both, traits={"is_seller": False, "locale": "th"}).value is False


def test_any_of_holds_when_one_part_holds_and_gives_only_the_winning_reasons() -> None:
    either = AnyOf((SELLER, THAI))
    assert summary(judge(either, traits={"is_seller": False, "locale": "th"})) == (True, "locale = 'th' = th", None)
    assert summary(judge(either, traits={"is_seller": True, "locale": "th"})) == \
        (True, "is_seller = True = True or locale = 'th' = th", None)
    assert summary(judge(either, traits={"is_seller": False, "locale": "en"})) == \
        (False, "is_seller = False = True or locale = 'en' = th", None)


def test_not_inverts_and_keeps_the_inner_reason_and_next_look() -> None:
    rule = Not(Inactive(7 * DAY))
    assert summary(judge(rule, [ev("app_opened", NOW - DAY)])) == \
        (True, "not (active 1 days ago (not > 1w))", NOW - DAY + 7 * DAY + 1)
    assert summary(judge(rule, [ev("app_opened", NOW - 8 * DAY)])) == \
        (False, "not (no activity for 8 days (> 1w))", None)


def test_combinations_look_again_at_the_earliest_time_any_part_could_change() -> None:
    soon, later = Inactive(2 * DAY), Inactive(5 * DAY)
    events = [ev("app_opened", NOW - DAY)]
    assert judge(All((later, soon)), events).next_us == NOW + DAY + 1
    assert judge(All((soon, later)), events).next_us == NOW + DAY + 1
    assert judge(AnyOf((later, soon)), events).next_us == NOW + DAY + 1
    assert judge(AnyOf((SELLER, later)), events, traits={"is_seller": True}).next_us == NOW + 4 * DAY + 1
    assert judge(All((SELLER, THAI))).next_us is None


def test_all_passes_on_the_pattern_facets_and_the_group_only_when_it_holds() -> None:
    rule = All((SELLER, CART))
    events = [ev("add_to_cart", NOW - 2 * HOUR, listing_id="L1")]
    assert set(facets(rule, events, {"is_seller": True})) == {"L1"}
    assert facets(rule, events, {"is_seller": False}) == {}
    verdict = judge(rule, events, {"is_seller": False})
    assert (verdict.value, verdict.facets, verdict.data) == (False, None, {})

    per_category = EventAggregate("item_viewed", "count", Compare("gte", 2), within_us=DAY, per="category")
    viewed = [ev("item_viewed", NOW - HOUR, category="cameras"), ev("item_viewed", NOW - MIN, category="cameras")]
    assert judge(All((SELLER, per_category)), viewed, {"is_seller": True}).data == {"category": "cameras"}
    assert judge(All((per_category, SELLER)), viewed, {"is_seller": False}).data == {}


def test_any_of_passes_on_the_winners_facets_and_group() -> None:
    per_category = EventAggregate("item_viewed", "count", Compare("gte", 2), within_us=DAY, per="category")
    viewed = [ev("item_viewed", NOW - HOUR, category="cameras"), ev("item_viewed", NOW - MIN, category="cameras")]
    verdict = judge(AnyOf((SELLER, per_category)), viewed)
    assert (verdict.value, verdict.data) == (True, {"category": "cameras"})
    assert set(facets(AnyOf((SELLER, CART)), [ev("add_to_cart", NOW - 2 * HOUR, listing_id="L7")])) == {"L7"}


# Membership as the segment engine stores it --------------------------------------------------------------------


def test_a_plain_member_keeps_the_reason_and_the_group_under_the_plain_facet() -> None:
    per_category = EventAggregate("item_viewed", "count", Compare("gte", 1), within_us=DAY, per="category")
    assert facets(per_category, [ev("item_viewed", NOW - HOUR, category="cameras")]) == {
        "": {"data": {"category": "cameras"}, "reason": "count(item_viewed, 1d) for category cameras = 1 ≥ 1"}}
    assert facets(SELLER, traits={"is_seller": True}) == {"": {"data": {}, "reason": "is_seller = True = True"}}
    assert facets(SELLER, traits={"is_seller": False}) == {}


# Inactivity and active days ------------------------------------------------------------------------------------


def test_inactive_is_strictly_more_than_the_span_and_looks_again_just_after_it() -> None:
    rule = Inactive(7 * DAY)
    assert summary(judge(rule)) == (False, "no activity yet", None)
    assert summary(judge(rule, [ev("app_opened", NOW - 7 * DAY)])) == \
        (False, "active 7 days ago (not > 1w)", NOW + 1)
    assert summary(judge(rule, [ev("app_opened", NOW - 7 * DAY - 1)])) == (True, "no activity for 7 days (> 1w)", None)
    assert summary(judge(rule, [ev("app_opened", NOW - 30 * DAY)])) == (True, "no activity for 30 days (> 1w)", None)
    assert summary(judge(rule, [ev("app_opened", NOW - 2 * DAY - HOUR)])) == \
        (False, "active 2 days ago (not > 1w)", NOW + 5 * DAY - HOUR + 1)


def test_inactivity_ignores_identify_calls() -> None:
    identify = Event(user_id="u1", name="identify", ts_us=NOW - HOUR, type="identify", properties={})
    assert summary(judge(Inactive(DAY), [ev("app_opened", NOW - 3 * DAY), identify])) == \
        (True, "no activity for 3 days (> 1d)", None)


def test_active_days_count_the_local_days_in_the_window_before_the_last_activity() -> None:
    rule = ActiveDays(Compare("gte", 3), within_us=7 * DAY)
    last = NOW - 10 * DAY  # the window ends at the last activity, not now
    on_days = [ev("app_opened", last - 7 * DAY), ev("app_opened", last - 6 * DAY), ev("app_opened", last - 3 * DAY),
               ev("app_opened", last)]
    assert summary(judge(rule, on_days)) == (True, "3 active days in the 1w before the last activity ≥ 3", None)
    assert summary(judge(rule, on_days[:1] + on_days[2:])) == \
        (False, "2 active days in the 1w before the last activity ≥ 3", None)


def test_active_days_without_any_activity_count_as_zero() -> None:
    assert summary(judge(ActiveDays(Compare("gte", 1), within_us=7 * DAY))) == (False, "0 active days ≥ 1", None)
    assert summary(judge(ActiveDays(Compare("lt", 1), within_us=7 * DAY))) == (True, "0 active days < 1", None)


# Event aggregates -----------------------------------------------------------------------------------------------


def test_a_windowed_count_takes_events_after_the_cutoff_up_to_now_and_looks_again_when_one_slides_out() -> None:
    rule = EventAggregate("item_viewed", "count", Compare("gte", 2), within_us=7 * DAY)
    events = [ev("item_viewed", NOW - 7 * DAY), ev("item_viewed", NOW - 7 * DAY + 1), ev("item_viewed", NOW - DAY),
              ev("item_viewed", NOW)]
    assert summary(judge(rule, events)) == (True, "count(item_viewed, 1w) = 3 ≥ 2", NOW + 1)
    assert summary(judge(rule, events[2:])) == (True, "count(item_viewed, 1w) = 2 ≥ 2", NOW + 6 * DAY)


def test_a_windowed_count_ignores_events_after_now_but_looks_again_when_they_arrive() -> None:
    rule = EventAggregate("item_viewed", "count", Compare("gte", 1), within_us=7 * DAY)
    assert summary(judge(rule, [ev("item_viewed", NOW + HOUR), ev("item_viewed", NOW + 2 * HOUR)])) == \
        (False, "count(item_viewed, 1w) = 0 ≥ 1", NOW + HOUR)
    assert summary(judge(rule, [ev("item_viewed", NOW + HOUR), ev("item_viewed", NOW - 2 * DAY)])) == \
        (True, "count(item_viewed, 1w) = 1 ≥ 1", NOW + HOUR)
    assert summary(judge(rule, [ev("item_viewed", NOW - 2 * DAY), ev("item_viewed", NOW + 6 * DAY)])) == \
        (True, "count(item_viewed, 1w) = 1 ≥ 1", NOW + 5 * DAY)


def test_a_windowed_sum_distinct_and_last() -> None:
    spend = EventAggregate("purchase", "sum", Compare("gt", 1000), of="price", within_us=30 * DAY)
    bought = [ev("purchase", NOW - DAY, price=1000.25), ev("purchase", NOW - 2 * DAY, price=234.25)]
    assert summary(judge(spend, bought)) == (True, "sum(purchase.price, 30d) = 1,234.50 > 1000", NOW + 28 * DAY)
    categories = EventAggregate("item_viewed", "distinct", Compare("gte", 2), of="category", within_us=DAY)
    viewed = [ev("item_viewed", NOW - HOUR, category="cameras"), ev("item_viewed", NOW - 2 * HOUR, category="cameras"),
              ev("item_viewed", NOW - 3 * HOUR), ev("item_viewed", NOW - 4 * HOUR, category="lenses")]
    assert summary(judge(categories, viewed)) == (True, "distinct(item_viewed.category, 1d) = 2 ≥ 2", NOW + 20 * HOUR)
    assert judge(categories, viewed[:3]).reason == "distinct(item_viewed.category, 1d) = 1 ≥ 2"
    recent = EventAggregate("purchase", "last", Compare("lt", 2 * DAY), within_us=30 * DAY)
    assert summary(judge(recent, bought)) == (True, f"last(purchase, 30d) = {DAY} < {2 * DAY}", NOW + 28 * DAY)
    assert summary(judge(recent, bought[1:])) == (False, f"last(purchase, 30d) = {2 * DAY} < {2 * DAY}",
                                                  NOW + 28 * DAY)
    assert summary(judge(recent)) == (False, f"last(purchase, 30d) = None < {2 * DAY}", None)


def test_lifetime_count_sum_distinct_and_last() -> None:
    bought = [ev("purchase", NOW - 400 * DAY, price=1200, listing_id="L1"),
              ev("purchase", NOW - 3 * DAY, price=34, listing_id="L2"),
              ev("purchase", NOW - 5 * DAY, price=1000, listing_id="L1")]
    count = EventAggregate("purchase", "count", Compare("gte", 3))
    assert summary(judge(count, bought)) == (True, "count(purchase, lifetime) = 3 ≥ 3", None)
    assert summary(judge(count)) == (False, "count(purchase, lifetime) = 0 ≥ 3", None)
    spend = EventAggregate("purchase", "sum", Compare("gte", 2234), of="price")
    assert summary(judge(spend, bought)) == (True, "sum(purchase.price, lifetime) = 2234 ≥ 2234", None)
    assert summary(judge(spend)) == (False, "sum(purchase.price, lifetime) = 0 ≥ 2234", None)
    listings = EventAggregate("purchase", "distinct", Compare("eq", 2), of="listing_id")
    assert summary(judge(listings, bought)) == (True, "distinct(purchase.listing_id, lifetime) = 2 = 2", None)
    since = EventAggregate("purchase", "last", Compare("lt", 4 * DAY))
    assert summary(judge(since, bought)) == (True, f"last(purchase, lifetime) = {3 * DAY} < {4 * DAY}", None)
    assert summary(judge(since)) == (False, f"last(purchase, lifetime) = None < {4 * DAY}", None)


def test_time_since_the_last_event_looks_again_just_after_it_passes_more_than() -> None:
    lapsed = EventAggregate("app_opened", "last", Compare("gt", 3 * DAY))
    assert summary(judge(lapsed, [ev("app_opened", NOW - DAY)])) == \
        (False, f"last(app_opened, lifetime) = {DAY} > {3 * DAY}", NOW + 2 * DAY + 1)
    assert summary(judge(lapsed, [ev("app_opened", NOW - 3 * DAY - 1)])) == \
        (True, f"last(app_opened, lifetime) = {3 * DAY + 1} > {3 * DAY}", None)
    assert summary(judge(lapsed)) == (False, f"last(app_opened, lifetime) = None > {3 * DAY}", None)
    at_least = EventAggregate("app_opened", "last", Compare("gte", 3 * DAY))
    assert judge(at_least, [ev("app_opened", NOW - DAY)]).next_us is None
    windowed = EventAggregate("app_opened", "last", Compare("gt", 3 * DAY), within_us=10 * DAY)
    assert judge(windowed, [ev("app_opened", NOW - DAY)]).next_us == NOW + 2 * DAY + 1
    assert judge(windowed, [ev("app_opened", NOW - 9 * DAY)]).next_us == NOW + DAY
    both = [ev("app_opened", NOW - 9 * DAY), ev("app_opened", NOW - DAY)]
    assert judge(windowed, both).next_us == NOW + DAY, "the earlier of an event leaving and the time passing"


def test_per_group_the_largest_qualifying_group_is_kept() -> None:
    rule = EventAggregate("item_viewed", "count", Compare("gte", 2), within_us=7 * DAY, per="category")
    views = [ev("item_viewed", NOW - HOUR, category=c) for c in ("cameras", "bags", "bags", "cameras", "bags")]
    verdict = judge(rule, [*views, ev("item_viewed", NOW - HOUR, price=5)])
    assert (verdict.value, verdict.reason, verdict.data) == \
        (True, "count(item_viewed, 1w) for category bags = 3 ≥ 2", {"category": "bags"})
    assert verdict.next_us == NOW + 7 * DAY - HOUR
    tie = [ev("item_viewed", NOW - HOUR, category=c) for c in ("bags", "cameras", "bags", "cameras")]
    assert judge(rule, tie).data == {"category": "cameras"}


def test_per_group_with_no_qualifying_group_names_the_best_one() -> None:
    rule = EventAggregate("item_viewed", "count", Compare("gte", 3), within_us=7 * DAY, per="category")
    views = [ev("item_viewed", NOW - HOUR, category=c) for c in ("bags", "bags", "cameras")]
    assert summary(judge(rule, views)) == \
        (False, "count(item_viewed, 1w) per category: 2 for category bags, none ≥ 3", NOW + 7 * DAY - HOUR)
    assert summary(judge(rule)) == (False, "count(item_viewed, 1w) per category: nothing, none ≥ 3", None)
    lifetime = EventAggregate("purchase", "count", Compare("gte", 2), per="seller_id")
    bought = [ev("purchase", NOW - DAY, seller_id="s9"), ev("purchase", NOW - DAY, seller_id="s2"),
              ev("purchase", NOW - HOUR, seller_id="s2")]
    assert (judge(lifetime, bought).reason, judge(lifetime, bought).data) == \
        ("count(purchase, lifetime) for seller_id s2 = 2 ≥ 2", {"seller_id": "s2"})
    assert judge(lifetime, bought[:2]).reason == "count(purchase, lifetime) per seller_id: 1 for seller_id s9, none ≥ 2"
    assert judge(lifetime, bought[1:2] + bought[:1]).reason == \
        "count(purchase, lifetime) per seller_id: 1 for seller_id s9, none ≥ 2", "the same reason in any event order"


def test_per_group_with_no_qualifying_group_ranks_an_empty_sum_below_any_spend() -> None:
    rule = EventAggregate("purchase", "sum", Compare("gt", 500), of="price", per="seller_id")
    bought = [ev("purchase", NOW - DAY, seller_id="s1", price=1), ev("purchase", NOW - DAY, seller_id="s2", price=0)]
    assert judge(rule, bought).reason == "sum(purchase.price, lifetime) per seller_id: 1 for seller_id s1, none > 500"


def test_per_group_of_times_since_the_last_event() -> None:
    rule = EventAggregate("item_viewed", "last", Compare("lt", HOUR), per="category")
    views = [ev("item_viewed", NOW - 2 * HOUR, category="bags"), ev("item_viewed", NOW - 3 * HOUR, category="cameras")]
    assert judge(rule, views).reason == \
        f"last(item_viewed, lifetime) per category: {3 * HOUR} for category cameras, none < {HOUR}"


# Patterns (the cart abandoners) ---------------------------------------------------------------------------------


def test_an_item_left_in_the_cart_joins_once_the_window_has_passed_and_leaves_after_the_stay() -> None:
    added = NOW - 2 * HOUR
    events = [ev("add_to_cart", added, listing_id="L1", price=900)]
    verdict = judge(CART, events)
    assert summary(verdict) == (True, "1 open add_to_cart without purchase/remove_from_cart within 1h", added + 7 * DAY)
    assert verdict.facets == {"L1": {
        "data": {"listing_id": "L1", "at_us": added, "properties": {"listing_id": "L1", "price": 900}},
        "reason": "add_to_cart of listing_id L1 with no purchase/remove_from_cart within 1h"}}
    assert summary(judge(CART, events, now=added + 30 * MIN)) == \
        (False, "no add_to_cart left without purchase/remove_from_cart within 1h", added + HOUR)
    assert judge(CART, events, now=added + HOUR).value is True, "the window is over at exactly one hour"
    assert judge(CART, events, now=added + 7 * DAY - 1).value is True
    assert summary(judge(CART, events, now=added + 7 * DAY)) == \
        (False, "no add_to_cart left without purchase/remove_from_cart within 1h", None)
    assert judge(CART, events, now=added - 1).value is False, "an event after now is not seen yet"
    assert judge(CART, events, now=added - 1).next_us == added, "an event after now wakes the rule at its time"


def test_a_closing_event_at_or_after_the_add_closes_it_but_not_one_before_or_after_now() -> None:
    added = NOW - 2 * HOUR
    assert judge(CART, [ev("add_to_cart", added, listing_id="L1"), ev("purchase", added, listing_ids=["L1"])]).value \
        is False
    assert judge(CART, [ev("add_to_cart", added, listing_id="L1"),
                        ev("remove_from_cart", added + 10 * MIN, listing_id="L1")]).value is False
    assert judge(CART, [ev("purchase", added - MIN, listing_ids=["L1"]),
                        ev("add_to_cart", added, listing_id="L1")]).value is True
    assert judge(CART, [ev("add_to_cart", added, listing_id="L1"),
                        ev("purchase", NOW + MIN, listing_ids=["L1"])]).value is True
    assert judge(CART, [ev("add_to_cart", added, listing_id="L1"),
                        ev("purchase", added + MIN, listing_ids=["L2"])]).value is True
    assert judge(CART, [ev("add_to_cart", added, listing_id="L1"), ev("purchase", NOW, listing_ids=["L1"])]).value \
        is False, "a purchase at this very instant has happened"


def test_an_add_at_this_very_instant_is_seen_and_looked_at_again_when_its_window_ends() -> None:
    assert summary(judge(CART, [ev("add_to_cart", NOW, listing_id="L1")])) == \
        (False, "no add_to_cart left without purchase/remove_from_cart within 1h", NOW + HOUR)


def test_each_open_item_is_a_facet_of_its_own_kept_from_its_earliest_add() -> None:
    events = [ev("add_to_cart", NOW - 3 * HOUR, listing_id="L2"), ev("add_to_cart", NOW - 5 * HOUR, listing_id="L2"),
              ev("add_to_cart", NOW - 2 * HOUR, listing_id="L1"), ev("add_to_cart", NOW - 10 * MIN, listing_id="L3")]
    verdict = judge(CART, events)
    assert verdict.value is True
    assert verdict.reason == "2 open add_to_cart without purchase/remove_from_cart within 1h"
    assert verdict.facets is not None and set(verdict.facets) == {"L1", "L2"}
    assert verdict.facets["L2"]["data"]["at_us"] == NOW - 5 * HOUR
    assert verdict.next_us == NOW + 50 * MIN  # L3's window ends first


def test_reasons_show_floats_with_two_decimals_and_thousands_and_integers_as_they_are() -> None:
    spend = EventAggregate("purchase", "sum", Compare("gte", 0), of="price")
    assert judge(spend, [ev("purchase", NOW, price=12345)]).reason == "sum(purchase.price, lifetime) = 12345 ≥ 0"
    assert judge(spend, [ev("purchase", NOW, price=0.5)]).reason == "sum(purchase.price, lifetime) = 0.50 ≥ 0"


@pytest.mark.parametrize(("measure", "of", "empty"), [
    ("count", None, "0"), ("sum", "price", "0"), ("distinct", "price", "0"), ("last", None, "None")])
def test_an_aggregate_with_no_events_in_its_window_measures_zero_or_none(measure: str, of: str | None,
                                                                         empty: str) -> None:
    rule = EventAggregate("purchase", measure, Compare("ne", 0), of=of, within_us=DAY)  # type: ignore[arg-type]
    label = f"purchase.{of}" if of else "purchase"
    verdict = judge(rule, [ev("purchase", NOW - 2 * DAY, price=5)])
    assert (verdict.value, verdict.reason) == (empty == "None", f"{measure}({label}, 1d) = {empty} ≠ 0")


def test_a_user_without_any_event_is_in_no_event_segment() -> None:
    nothing: State = {}
    assert summary(judge(CART, state=nothing)) == \
        (False, "no add_to_cart left without purchase/remove_from_cart within 1h", None)
    spend = EventAggregate("purchase", "sum", Compare("gt", 0), of="price", within_us=DAY)
    assert summary(judge(spend, state=nothing)) == (False, "sum(purchase.price, 1d) = 0 > 0", None)
    assert summary(judge(ActiveDays(Compare("gte", 1), DAY), state=nothing)) == (False, "0 active days ≥ 1", None)


def test_an_item_added_again_after_it_was_bought_is_open_again() -> None:
    events = [ev("add_to_cart", NOW - 5 * HOUR, listing_id="L1"), ev("purchase", NOW - 4 * HOUR, listing_ids=["L1"]),
              ev("add_to_cart", NOW - 3 * HOUR, listing_id="L1", qty=1)]
    verdict = judge(CART, events)
    assert verdict.facets is not None and verdict.facets["L1"]["data"]["at_us"] == NOW - 3 * HOUR
    assert verdict.next_us == NOW - 3 * HOUR + 7 * DAY


def test_the_same_item_added_twice_at_one_instant_is_one_facet() -> None:
    events = [ev("add_to_cart", NOW - 2 * HOUR, listing_id="L1", source="app"),
              ev("add_to_cart", NOW - 2 * HOUR, listing_id="L1", source="web")]
    verdict = judge(CART, events)
    assert verdict.facets is not None and list(verdict.facets) == ["L1"]
    assert verdict.facets["L1"]["data"]["properties"] == {"listing_id": "L1", "source": "app"}


def test_an_item_added_twice_looks_again_at_the_first_of_its_deadlines() -> None:
    pending = [ev("add_to_cart", NOW - 50 * MIN, listing_id="L1"), ev("add_to_cart", NOW - 10 * MIN, listing_id="L1")]
    assert judge(CART, pending).next_us == NOW + 10 * MIN
    left_open = [ev("add_to_cart", NOW - 5 * HOUR, listing_id="L1"), ev("add_to_cart", NOW - 3 * HOUR, listing_id="L1")]
    assert judge(CART, left_open).next_us == NOW - 5 * HOUR + 7 * DAY


def test_an_event_is_not_its_own_closer_and_a_later_one_closes_it() -> None:
    """"Viewed, and no view of the same listing within the hour": a view opens the pattern and is a closer too, and
    does not close itself (the same log id); the next view closes the first and opens its own hour."""
    revisit = Pattern("viewed", ("viewed",), within_us=HOUR, same="listing_id", leaves_after_us=7 * DAY)
    first = Event(user_id="u1", name="viewed", ts_us=NOW - 3 * HOUR, properties={"listing_id": "L1"}, id=5)
    alone = judge(revisit, [first])
    assert alone.value and alone.facets is not None and alone.facets["L1"]["data"]["at_us"] == NOW - 3 * HOUR
    again = Event(user_id="u1", name="viewed", ts_us=NOW - 2 * HOUR, properties={"listing_id": "L1"}, id=9)
    both = judge(revisit, [first, again])
    assert both.value and both.facets is not None and both.facets["L1"]["data"]["at_us"] == NOW - 2 * HOUR

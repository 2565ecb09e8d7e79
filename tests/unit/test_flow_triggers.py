"""Which events start runs and which end them (flows/triggers.py), as pure functions on plain events."""

from __future__ import annotations

from typing import Any

import pytest

from growthengine.domain.events import Event
from growthengine.flows.model import EventTrigger, ExitRule
from growthengine.flows.triggers import derived, event_matches, exit_matches, trigger_entity
from growthengine.segments.model import Compare, PropertyFilter
from growthengine.storage.run_store import Run

PRICE_DROP = EventTrigger(event="listing_price_changed",
                          derive=(("drop_pct", "(old_price - new_price) / old_price * 100"),),
                          where=(PropertyFilter("drop_pct", Compare("gt", 10)),), per="listing_id",
                          audience="favorited")
BOUGHT_IT = ExitRule(event="purchase", where=(("listing_ids", "contains", "{{ entity }}"),))


def event(name: str, user: str = "u1", **properties: Any) -> Event:
    return Event(user_id=user, name=name, ts_us=0, properties=properties)


def run(entity: str = "L1", user: str = "u1") -> Run:
    return Run(id=1, flow="cart_abandonment", version="v", user_id=user, entity=entity, status="active",
               cursor="0", trigger_us=0, entered_us=0, updated_us=0, context={})


def test_derived_values_are_added_to_the_events_properties() -> None:
    values = derived(PRICE_DROP, {"listing_id": "L1", "old_price": 1000, "new_price": 850})
    assert values == {"listing_id": "L1", "old_price": 1000, "new_price": 850, "drop_pct": 15.0}
    assert derived(PRICE_DROP, {"listing_id": "L1", "old_price": 0, "new_price": 850}) is None  # division by zero
    assert derived(PRICE_DROP, {"listing_id": "L1", "new_price": 850}) is None  # a missing price


@pytest.mark.parametrize(("old", "new", "fires"), [(1000, 900, False), (1000, 899, True), (1000, 1100, False)])
def test_a_price_drop_fires_only_over_ten_percent(old: float, new: float, fires: bool) -> None:
    found = event_matches(PRICE_DROP, event("listing_price_changed", listing_id="L1", old_price=old, new_price=new))
    assert (found is not None) == fires
    if found is not None:
        assert found["drop_pct"] == pytest.approx(10.1)


def test_another_event_or_an_underivable_one_fires_nothing() -> None:
    assert event_matches(PRICE_DROP, event("item_viewed", listing_id="L1", old_price=1000, new_price=1)) is None
    assert event_matches(PRICE_DROP, event("listing_price_changed", listing_id="L1", new_price=1)) is None


def test_the_entity_of_a_run() -> None:
    assert trigger_entity(PRICE_DROP, {"listing_id": "L7"}) == "L7"
    assert trigger_entity(PRICE_DROP, {"listing_ids": ["L8", "L9"]}) == "L8"
    assert trigger_entity(PRICE_DROP, {"title": "no listing"}) == ""
    assert trigger_entity(EventTrigger(event="seller_registered"), {"listing_id": "L7"}) == "", "no per: no entity"


def test_buying_the_item_ends_its_run_and_only_its_run() -> None:
    assert exit_matches(BOUGHT_IT, event("purchase", listing_ids=["L0", "L1"]), run("L1"))
    assert not exit_matches(BOUGHT_IT, event("purchase", listing_ids=["L2"]), run("L1"))
    assert not exit_matches(BOUGHT_IT, event("purchase", listing_ids=["L1"]), run("L1", user="u2")), "another user"
    assert not exit_matches(BOUGHT_IT, event("remove_from_cart", listing_ids=["L1"]), run("L1"))
    assert not exit_matches(BOUGHT_IT, event("purchase", listing_ids="L1"), run("L1")), "contains needs a list"
    assert not exit_matches(BOUGHT_IT, event("purchase"), run("L1"))
    assert exit_matches(ExitRule(event="purchase", where=(("listing_ids", "contains", 7),)),
                        event("purchase", listing_ids=[7, 8]), run("L1")), "compared as text"


def test_an_exit_on_a_plain_value() -> None:
    rule = ExitRule(event="unsubscribed", where=(("channel", "eq", "email"), ("source", "eq", "{{entity}}")))
    assert exit_matches(rule, event("unsubscribed", channel="email", source="L1"), run("L1"))
    assert not exit_matches(rule, event("unsubscribed", channel="push", source="L1"), run("L1"))
    assert not exit_matches(rule, event("unsubscribed", channel="email", source="L2"), run("L1"))
    assert not exit_matches(rule, event("unsubscribed", source="L1"), run("L1")), "a missing property is no match"
    literal = ExitRule(event="listing_created", where=(("category", "eq", "cameras"),))
    assert exit_matches(literal, event("listing_created", category="cameras"), run("cameras-not-entity"))
    assert not exit_matches(literal, event("listing_created", category="{{entity}}"), run("cameras"))
    numeric = ExitRule(event="purchase", where=(("amount", "eq", 100),))
    assert exit_matches(numeric, event("purchase", amount="100"), run()), "compared as text"
    assert exit_matches(ExitRule(event="seller_registered"), event("seller_registered"), run()), "no conditions"


@pytest.mark.parametrize(("old", "new", "fires"), [(333, 299.70, False), (333, 299.66, True), (10000, 9000, False),
                                                   (10000, 8999, True)])
def test_a_drop_of_exactly_ten_percent_sends_nothing_whatever_the_floats(old: float, new: float, fires: bool) -> None:
    # 333 -> 299.70 is 10 % exactly; binary floating point alone made it 10.000000000000004 %.
    values = event_matches(PRICE_DROP, event("listing_price_changed", listing_id="L1", old_price=old, new_price=new))
    assert (values is not None) is fires


def test_a_derived_float_is_rounded_to_nine_decimals_and_other_values_are_kept_as_they_are() -> None:
    trigger = EventTrigger(event="e", derive=(("third", "a / 3"), ("label", "name ~ '!'"), ("sum", "a + 1"),
                                              ("flag", "a > 0")))
    values = derived(trigger, {"a": 1, "name": "L"})
    assert values == {"a": 1, "name": "L", "third": 0.333333333, "label": "L!", "sum": 2, "flag": True}
    assert values is not None and type(values["sum"]) is int and type(values["flag"]) is bool


@pytest.mark.parametrize(("old", "new", "fires"), [
    (10000, 9000, False),    # exactly 10 %: no alert
    (10000, 8999, True),     # 10.01 %: an alert
    (30000, 27000, False),
    (30000, 26997, True),
], ids=["10000-10%", "10000-10.01%", "30000-10%", "30000-10.01%"])
def test_the_shipped_price_drop_flow_alerts_only_over_ten_percent(old: float, new: float, fires: bool) -> None:
    """The shipped ``price_drop`` trigger itself (config/default.yaml), not a copy of it."""
    from growthengine.config.loader import load_config

    trigger = load_config().flows["price_drop"].trigger
    assert isinstance(trigger, EventTrigger)
    found = event_matches(trigger, event("listing_price_changed", listing_id="L1", old_price=old, new_price=new))
    assert (found is not None) == fires

"""Compiled segment rules (segments/compiled.py) decide exactly as the evaluator does (segments/evaluate.py, the
oracle): the same facets with the same data, and the same instant to look again, for random rules over random
histories folded by the real feeds, at random instants (before, inside and after every window)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from growthengine.config.loader import load_config
from growthengine.domain.events import Event
from growthengine.segments.compiled import comparer, compile_segment
from growthengine.segments.evaluate import Evaluator
from growthengine.segments.feeds import FeedPlan, State, apply_event, compare
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
    PropertyFilter,
    Segment,
    TraitCondition,
)

MIN = 60_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
NOW = 20_000 * DAY
NAMES = ("item_viewed", "purchase", "add_to_cart", "remove_from_cart", "location_searched", "item_sold")

comparisons = st.builds(Compare, st.sampled_from(["gt", "gte", "lt", "lte", "eq", "ne"]),
                        st.sampled_from([0, 1, 2, 5, 100, 2.5]))
windows = st.sampled_from([None, HOUR, DAY, 7 * DAY])
aggregates = st.one_of(
    st.builds(EventAggregate, st.sampled_from(NAMES), st.sampled_from(["count", "sum", "distinct"]), comparisons,
              of=st.sampled_from(["amount", "province"]), within_us=windows,
              where=st.sampled_from([(), (PropertyFilter("amount", Compare("gt", 50)),)]),
              per=st.sampled_from([None, None, "province"])),
    st.builds(EventAggregate, st.sampled_from(NAMES), st.just("last"),
              st.builds(Compare, st.sampled_from(["gt", "lt"]), st.sampled_from([MIN, HOUR, DAY])),
              within_us=windows, per=st.sampled_from([None, "province"])),
)
leaves = st.one_of(
    aggregates,
    st.builds(Inactive, st.sampled_from([HOUR, DAY, 30 * DAY])),
    st.builds(ActiveDays, comparisons, st.sampled_from([DAY, 7 * DAY, 60 * DAY])),
    st.just(Pattern("add_to_cart", ("purchase", "remove_from_cart"), within_us=HOUR, same="listing_id",
                    leaves_after_us=7 * DAY)),
    st.builds(TraitCondition, st.sampled_from(["plan", "age"]), comparisons),
    st.just(InSegment("other")),
)
conditions: st.SearchStrategy[Condition] = st.recursive(
    leaves, lambda inner: st.one_of(st.builds(All, st.lists(inner, min_size=1, max_size=3).map(tuple)),
                                    st.builds(AnyOf, st.lists(inner, min_size=1, max_size=3).map(tuple)),
                                    st.builds(Not, inner)), max_leaves=5)
events = st.lists(st.builds(
    lambda name, back, amount, listing, province, seq: Event(
        user_id="u1", name=name, ts_us=NOW - back, id=seq,
        properties={"amount": amount, "listing_id": listing, "listing_ids": [listing], "province": province}),
    st.sampled_from(NAMES), st.integers(min_value=-2 * HOUR, max_value=40 * DAY), st.integers(0, 300),
    st.sampled_from(["L0", "L1"]), st.sampled_from(["Bangkok", "Chiang Mai", None]), st.integers(1, 10_000)),
    max_size=30)


def _evaluated(segment: Segment, state: State, traits: dict[str, Any], now: int) -> tuple[dict[str, Any], Any]:
    evaluator = Evaluator(traits, state, now, reasons=False)
    facets = evaluator.segment(segment)
    return {entity: facet["data"] for entity, facet in facets.items()}, evaluator.last_verdict.next_us


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(condition=conditions, history=events, at=st.integers(min_value=-3 * HOUR, max_value=45 * DAY),
       traits=st.fixed_dictionaries({"plan": st.sampled_from([0, 1, 5, None, "x"]), "age": st.integers(0, 200)}),
       member=st.booleans())
def test_a_compiled_rule_decides_as_the_evaluator(condition: Condition, history: list[Event], at: int,
                                                  traits: dict[str, Any], member: bool) -> None:
    segment = Segment("s", "S", "realtime", condition)
    state: State = {"m": {"other": {"": [0, {}]}} if member else {}}
    plan = FeedPlan.build([segment])
    for event in history:
        apply_event(state, event, plan, "Asia/Bangkok")
    now = NOW + at
    assert compile_segment(segment)(state, traits, now) == _evaluated(segment, state, traits, now)


def test_the_five_default_segments_compile_and_decide_as_the_evaluator_on_an_empty_state() -> None:
    config = load_config()
    assert len(config.segments) == 5
    for segment in config.segments.values():
        assert compile_segment(segment)({}, {}, NOW) == _evaluated(segment, {}, {}, NOW)


@given(value=st.one_of(st.none(), st.integers(-3, 200), st.floats(allow_nan=False), st.text(max_size=2)),
       cmp=comparisons)
def test_a_compiled_comparison_is_the_comparison(value: Any, cmp: Compare) -> None:
    assert comparer(cmp)(value) == compare(value, cmp)

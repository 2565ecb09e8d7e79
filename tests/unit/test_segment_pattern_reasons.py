"""A pattern segment's reasons worded from the compiled rule's facets (segments/pattern_reasons.py) are the
evaluator's (segments/evaluate.py, the oracle), word for word, with the same facets and data, over random histories
folded by the real feeds at random instants; any rule that is not one pattern is left to the evaluator."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from growthengine.domain.events import Event
from growthengine.segments.compiled import compile_segment
from growthengine.segments.evaluate import Evaluator
from growthengine.segments.feeds import FeedPlan, State, apply_event
from growthengine.segments.model import All, Inactive, Pattern, Segment
from growthengine.segments.pattern_reasons import pattern_wording

MIN = 60_000_000
HOUR = 60 * MIN
DAY = 24 * HOUR
NOW = 20_000 * DAY
NAMES = ("add_to_cart", "purchase", "remove_from_cart", "item_viewed")

patterns = st.builds(
    Pattern, st.just("add_to_cart"), st.sampled_from([("purchase", "remove_from_cart"), ("purchase",)]),
    within_us=st.sampled_from([MIN, HOUR, 90 * MIN, DAY]), same=st.just("listing_id"),
    leaves_after_us=st.sampled_from([HOUR, 7 * DAY]))
events = st.lists(st.builds(
    lambda name, back, listing, seq: Event(user_id="u1", name=name, ts_us=NOW - back, id=seq,
                                           properties={"listing_id": listing, "title": "เสื้อยืด", "price": 290}),
    st.sampled_from(NAMES), st.integers(min_value=-2 * HOUR, max_value=10 * DAY), st.sampled_from(["L0", "L1", "L2"]),
    st.integers(1, 10_000)), max_size=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=patterns, history=events, at=st.integers(min_value=-3 * HOUR, max_value=12 * DAY))
def test_a_pattern_worded_from_its_compiled_facets_is_worded_as_the_evaluator_words_it(
        pattern: Pattern, history: list[Event], at: int) -> None:
    segment = Segment("carts", "Carts", "realtime", pattern)
    state: State = {}
    plan = FeedPlan.build([segment])
    for event in history:
        apply_event(state, event, plan, "Asia/Bangkok")
    now = NOW + at - 2 * HOUR
    evaluator = Evaluator({}, state, now)
    expected = evaluator.segment(segment)
    found, next_us = compile_segment(segment)(state, {}, now)
    word = pattern_wording(segment)
    assert word is not None
    reason, facets = word(found)
    assert facets == expected
    assert reason == evaluator.last_verdict.reason
    assert next_us == evaluator.last_verdict.next_us


def test_the_default_cart_abandoners_sentence_and_no_wording_for_other_rules() -> None:
    pattern = Pattern("add_to_cart", ("purchase", "remove_from_cart"), within_us=HOUR, same="listing_id",
                      leaves_after_us=7 * DAY)
    word = pattern_wording(Segment("cart_abandoners", "Carts", "realtime", pattern))
    assert word is not None
    reason, facets = word({"L1": {"listing_id": "L1", "at_us": 5, "properties": {}}})
    assert reason == "1 open add_to_cart without purchase/remove_from_cart within 1h"
    assert facets["L1"]["reason"] == "add_to_cart of listing_id L1 with no purchase/remove_from_cart within 1h"
    assert word({}) == ("no add_to_cart left without purchase/remove_from_cart within 1h", {})
    assert pattern_wording(Segment("idle", "Idle", "realtime", Inactive(DAY))) is None
    assert pattern_wording(Segment("both", "Both", "realtime", All((pattern, Inactive(DAY))))) is None

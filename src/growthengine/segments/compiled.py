"""Segment rules compiled to closures: the segment engine's decision without a tree walk and without reasons.

:func:`compile_segment` turns a segment's condition tree into nested closures, built once per configuration, each
bound to its node's constants (the feed id, the window, the comparison as a function of its operator). A compiled
segment gives, for a user's state at an instant, exactly what :class:`~growthengine.segments.evaluate.Evaluator`
with ``reasons=False`` gives (the facets held, each with the data a member keeps, and when the answer could next
change), as plain tuples and dicts: no :class:`Verdict` objects, no reason dicts, no per-group lists for a rule that
is not grouped. The evaluator stays the oracle and the only one that words reasons: the engine asks it only for a
segment whose membership changes (``tests/unit/test_segment_compiled.py`` checks the two agree).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from growthengine.segments.evaluate import PLAIN
from growthengine.segments.feeds import State, closing_order, compare, feed_id, opening_order
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

Facets = dict[str, dict[str, Any]]
"""Per facet (an entity, or ``""`` for a plain member): the data the member keeps."""
Outcome = tuple[bool, int | None, Facets | None, dict[str, Any]]
"""A node's value, when it could next change, its per-entity facets (patterns) and the data it passes on."""
Node = Callable[[State, dict[str, Any], int], Outcome]
Decide = Callable[[State, dict[str, Any], int], tuple[Facets, int | None]]
"""A compiled segment: the facets a user holds now (empty: not a member) and when to look again."""

_NO_DATA: dict[str, Any] = {}


def _earlier(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None or a <= b:
        return a
    return b


_ORDERED: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le, "eq": operator.eq}


def comparer(cmp: Compare) -> Callable[[Any], bool]:
    """``compare(value, cmp)`` as a function of the value: a number's ordering picked once, here, not per call."""
    op, operand = cmp.op, cmp.operand
    numeric = isinstance(operand, (int, float)) and not isinstance(operand, bool)
    test = _ORDERED.get(op) if numeric else None
    if test is None:
        return lambda value: compare(value, cmp)
    ordered = test

    def numeric_compare(value: Any) -> bool:
        if value is None:  # (equal to no number, and not ordered against one)
            return False
        try:
            return bool(ordered(value, operand))
        except TypeError:
            return False
    return numeric_compare


def compile_segment(segment: Segment) -> Decide:
    node = compile_condition(segment.condition)

    def decide(state: State, traits: dict[str, Any], now_us: int) -> tuple[Facets, int | None]:
        value, next_us, facets, data = node(state, traits, now_us)
        if not value:
            return {}, next_us
        if facets is not None:
            return facets, next_us
        return {PLAIN: data if data is not _NO_DATA else {}}, next_us

    return decide


def compile_condition(node: Condition) -> Node:
    if isinstance(node, All):
        return _all(tuple(compile_condition(c) for c in node.items))
    if isinstance(node, AnyOf):
        return _any(tuple(compile_condition(c) for c in node.items))
    if isinstance(node, Not):
        inner = compile_condition(node.item)

        def negated(state: State, traits: dict[str, Any], now_us: int) -> Outcome:
            value, next_us, _, _ = inner(state, traits, now_us)
            return not value, next_us, None, _NO_DATA
        return negated
    if isinstance(node, TraitCondition):
        trait, check = node.trait, comparer(node.compare)
        return lambda state, traits, now_us: (check(traits.get(trait)), None, None, _NO_DATA)
    if isinstance(node, InSegment):
        key = node.key
        return lambda state, traits, now_us: (bool(state.get("m", _NO_DATA).get(key)), None, None, _NO_DATA)
    if isinstance(node, Inactive):
        return _inactive(node)
    if isinstance(node, ActiveDays):
        return _active_days(node)
    if isinstance(node, Pattern):
        return _pattern(node)
    if node.within_us is None:
        return _lifetime(node)
    if node.per is None:
        return _window(node)
    return _window_per(node)


def _all(parts: tuple[Node, ...]) -> Node:
    def every(state: State, traits: dict[str, Any], now_us: int) -> Outcome:
        ok = True
        next_us: int | None = None
        facets: Facets | None = None
        data: dict[str, Any] | None = None
        for part in parts:  # every part: the earliest next look counts whichever part fails
            value, when, part_facets, part_data = part(state, traits, now_us)
            if not value:
                ok = False
            if when is not None and (next_us is None or when < next_us):
                next_us = when
            if part_facets is not None and facets is None:
                facets = part_facets
            if part_data:
                data = dict(part_data) if data is None else data | part_data
        if not ok:
            return False, next_us, None, _NO_DATA
        return True, next_us, facets, data if data is not None else {}
    return every


def _any(parts: tuple[Node, ...]) -> Node:
    def either(state: State, traits: dict[str, Any], now_us: int) -> Outcome:
        won = False
        next_us: int | None = None
        facets: Facets | None = None
        data: dict[str, Any] | None = None
        for part in parts:
            value, when, part_facets, part_data = part(state, traits, now_us)
            if when is not None and (next_us is None or when < next_us):
                next_us = when
            if value:
                won = True
                if part_facets is not None and facets is None:
                    facets = part_facets
                if part_data:
                    data = dict(part_data) if data is None else data | part_data
        return won, next_us, facets, data if data is not None else {}
    return either


def _inactive(node: Inactive) -> Node:
    span = node.more_than_us

    def inactive(state: State, traits: dict[str, Any], now_us: int) -> Outcome:
        last = state.get("a", _NO_DATA).get("last")
        if last is None:
            return False, None, None, _NO_DATA
        if now_us - last > span:
            return True, None, None, _NO_DATA
        return False, last + span + 1, None, _NO_DATA
    return inactive


def _active_days(node: ActiveDays) -> Node:
    check, within = comparer(node.compare), node.within_us
    none_active = check(0)

    def active_days(state: State, traits: dict[str, Any], now_us: int) -> Outcome:
        activity = state.get("a", _NO_DATA)
        last = activity.get("last")
        if last is None:
            return none_active, None, None, _NO_DATA
        cutoff = last - within
        days = 0
        for ts in activity.get("days", _NO_DATA).values():
            if ts > cutoff:
                days += 1
        return check(days), None, None, _NO_DATA
    return active_days


def _window(node: EventAggregate) -> Node:
    """A windowed aggregate, not grouped: one pass over the window's entries."""
    fid, within, measure = feed_id(node), node.within_us, node.measure
    assert within is not None
    check = comparer(node.compare)
    last_gt = node.compare.operand if measure == "last" and node.compare.op == "gt" else None

    def window(state: State, traits: dict[str, Any], now_us: int) -> Outcome:
        entries = state.get("f", _NO_DATA).get(fid) or ()
        cutoff = now_us - within
        future: int | None = None
        oldest: int | None = None
        newest: int | None = None
        count = 0
        total: Any = 0
        seen: set[Any] = set()
        for entry in entries:
            ts = entry[0]
            if ts > now_us:
                if future is None or ts < future:
                    future = ts
                continue
            if ts <= cutoff:
                continue
            if oldest is None or ts < oldest:
                oldest = ts
            count += 1
            if measure == "sum":
                total += entry[1]
            elif measure == "distinct":
                if entry[1] is not None:
                    seen.add(entry[1])
            elif measure == "last" and (newest is None or ts > newest):
                newest = ts
        next_us = _earlier(future, None if oldest is None else oldest + within)
        if measure == "count":
            value: Any = count
        elif measure == "sum":
            value = total
        elif measure == "distinct":
            value = len(seen)
        else:
            value = None if newest is None else now_us - newest
        ok = check(value)
        if last_gt is not None and value is not None and not ok:
            next_us = _earlier(next_us, now_us - value + last_gt + 1)
        return ok, next_us, None, _NO_DATA
    return window


def _measure_group(measure: str, entries: list[tuple[int, Any]], now_us: int) -> Any:
    if measure == "count":
        return len(entries)
    if measure == "sum":
        return sum(v for _, v in entries)
    if measure == "distinct":
        return len({v for _, v in entries if v is not None})
    return now_us - max(ts for ts, _ in entries)


def _window_per(node: EventAggregate) -> Node:
    """A windowed aggregate per group: the largest qualifying group is the member's."""
    fid, within, measure, per = feed_id(node), node.within_us, node.measure, node.per
    assert within is not None and per is not None
    check = comparer(node.compare)

    def window_per(state: State, traits: dict[str, Any], now_us: int) -> Outcome:
        entries = state.get("f", _NO_DATA).get(fid) or ()
        cutoff = now_us - within
        next_us: int | None = None
        groups: dict[str, list[tuple[int, Any]]] = {}
        for ts, value, group in entries:
            if ts > now_us:
                next_us = _earlier(next_us, ts)
                continue
            if ts <= cutoff:
                continue
            next_us = _earlier(next_us, ts + within)
            key = group or ""
            found = groups.get(key)
            if found is None:
                groups[key] = [(ts, value)]
            else:
                found.append((ts, value))
        best: tuple[Any, str] | None = None
        for group, grouped in groups.items():
            measured = _measure_group(measure, grouped, now_us)
            if check(measured) and (best is None or (measured, group) > best):
                best = (measured, group)
        if best is None:
            return False, next_us, None, _NO_DATA
        return True, next_us, None, {per: best[1]}
    return window_per


def _lifetime(node: EventAggregate) -> Node:
    fid, measure, per = feed_id(node), node.measure, node.per
    check = comparer(node.compare)
    last_gt = node.compare.operand if measure == "last" and node.compare.op == "gt" else None

    def measured(agg: dict[str, Any], now_us: int) -> Any:
        if measure == "count":
            return agg["n"]
        if measure == "sum":
            return agg["s"]
        if measure == "distinct":
            return len(agg["d"])
        return None if agg["l"] is None else now_us - agg["l"]

    def lifetime(state: State, traits: dict[str, Any], now_us: int) -> Outcome:
        feed = state.get("f", _NO_DATA).get(fid) or _NO_DATA
        if per is None:
            agg = feed.get("")
            value = measured(agg, now_us) if agg is not None else (None if measure == "last" else 0)
            ok = check(value)
            if last_gt is not None and value is not None and not ok:
                return False, now_us - value + last_gt + 1, None, _NO_DATA
            return ok, None, None, _NO_DATA
        best: tuple[Any, str] | None = None
        for group, agg in feed.items():
            value = measured(agg, now_us)
            if check(value) and (best is None or (value, group) > best):
                best = (value, group)
        if best is None:
            return False, None, None, _NO_DATA
        return True, None, None, {per: best[1]}
    return lifetime


def _pattern(node: Pattern) -> Node:
    fid, within, leaves_after, same = feed_id(node), node.within_us, node.leaves_after_us, node.same

    def pattern(state: State, traits: dict[str, Any], now_us: int) -> Outcome:
        entities = state.get("f", _NO_DATA).get(fid) or _NO_DATA
        facets: Facets = {}
        next_us: int | None = None
        for entity, slot in entities.items():
            openings = slot["f"]
            if not openings:
                continue
            closes = [order for order in map(closing_order, slot["c"]) if order[0] <= now_us]
            for first in (sorted(openings, key=opening_order) if len(openings) > 1 else openings):
                ts = first[0]
                if ts > now_us:  # not seen yet: the rule looks again when the clock reaches it
                    next_us = _earlier(next_us, ts)
                    continue
                if closes:
                    opened = opening_order(first)
                    if any(closed > opened for closed in closes):
                        continue
                due = ts + within
                if now_us < due:
                    next_us = _earlier(next_us, due)
                elif now_us < ts + leaves_after:
                    next_us = _earlier(next_us, ts + leaves_after)
                    if entity not in facets:
                        facets[entity] = {same: entity, "at_us": ts, "properties": first[1]}
        return bool(facets), next_us, facets or None, _NO_DATA
    return pattern

"""Evaluating a segment's rule against a user's state at an instant: a verdict with its reason.

A verdict also says when, with no new event, the answer could next change (a window sliding past an old event,
inactivity running out, a pattern's deadline), so a durable timer can look again then.

``reasons=False`` gives the same verdicts, facets, data and times without wording any reason (every reason is
``""``): the segment engine decides with it and words the reasons only for a membership that changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from growthengine.segments.durations import format_duration_us
from growthengine.segments.feeds import State, closing_order, compare, feed_id, opening_order
from growthengine.segments.model import (
    ActiveDays,
    All,
    AnyOf,
    Condition,
    EventAggregate,
    Inactive,
    InSegment,
    Not,
    Pattern,
    Segment,
    TraitCondition,
)

PLAIN = ""  # the facet of a segment that is not per entity


@dataclass
class Verdict:
    value: bool
    reason: str
    next_us: int | None = None
    facets: dict[str, dict[str, Any]] | None = None  # per-entity members (patterns)
    data: dict[str, Any] = field(default_factory=dict)  # what the member keeps (the group of a per rule)


def _earliest(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


class Evaluator:
    def __init__(self, traits: dict[str, Any], state: State, now_us: int, *, reasons: bool = True) -> None:
        self.traits = traits
        self.state = state
        self.now_us = now_us
        self.reasons = reasons

    def segment(self, segment: Segment) -> dict[str, dict[str, Any]]:
        """The facets the user holds in ``segment`` now (empty when not a member), with the verdict's reason."""
        verdict = self.condition(segment.condition)
        self.last_verdict = verdict
        if not verdict.value:
            return {}
        if verdict.facets is not None:
            return verdict.facets
        return {PLAIN: {"data": verdict.data, "reason": verdict.reason}}

    def condition(self, node: Condition) -> Verdict:
        if isinstance(node, All):
            parts = [self.condition(c) for c in node.items]
            ok = all(p.value for p in parts)
            data: dict[str, Any] = {}
            for p in parts:
                data.update(p.data)
            facets = next((p.facets for p in parts if p.facets is not None), None)
            reason = " and ".join(p.reason for p in parts) if self.reasons else ""
            return Verdict(ok, reason, _earliest(*(p.next_us for p in parts)), facets if ok else None,
                           data if ok else {})
        if isinstance(node, AnyOf):
            parts = [self.condition(c) for c in node.items]
            winners = [p for p in parts if p.value]
            data = {}
            for p in winners:
                data.update(p.data)
            reason = " or ".join(p.reason for p in (winners or parts)) if self.reasons else ""
            facets = next((p.facets for p in winners if p.facets is not None), None)
            return Verdict(bool(winners), reason, _earliest(*(p.next_us for p in parts)), facets, data)
        if isinstance(node, Not):
            inner = self.condition(node.item)
            return Verdict(not inner.value, f"not ({inner.reason})" if self.reasons else "", inner.next_us)
        if isinstance(node, TraitCondition):
            value = self.traits.get(node.trait)
            return Verdict(compare(value, node.compare),
                           f"{node.trait} = {value!r} {node.compare.describe()}" if self.reasons else "")
        if isinstance(node, InSegment):
            member = bool(self.state.get("m", {}).get(node.key))
            return Verdict(member, f"{'in' if member else 'not in'} segment {node.key}" if self.reasons else "")
        if isinstance(node, Inactive):
            return self._inactive(node)
        if isinstance(node, ActiveDays):
            return self._active_days(node)
        if isinstance(node, Pattern):
            return self._pattern(node)
        return self._aggregate(node)

    def _inactive(self, node: Inactive) -> Verdict:
        last = self.state.get("a", {}).get("last")
        words = self.reasons
        if last is None:
            return Verdict(False, "no activity yet" if words else "")
        idle = self.now_us - last
        span = format_duration_us(node.more_than_us) if words else ""
        if idle > node.more_than_us:
            return Verdict(True, f"no activity for {idle // 86_400_000_000} days (> {span})" if words else "")
        return Verdict(False, f"active {idle // 86_400_000_000} days ago (not > {span})" if words else "",
                       last + node.more_than_us + 1)

    def _active_days(self, node: ActiveDays) -> Verdict:
        activity = self.state.get("a", {})
        last = activity.get("last")
        words = self.reasons
        if last is None:
            return Verdict(compare(0, node.compare), f"0 active days {node.compare.describe()}" if words else "")
        cutoff = last - node.within_us
        days = sum(1 for ts in activity.get("days", {}).values() if ts > cutoff)
        if not words:
            return Verdict(compare(days, node.compare), "")
        window = format_duration_us(node.within_us)
        return Verdict(compare(days, node.compare),
                       f"{days} active days in the {window} before the last activity {node.compare.describe()}")

    def _aggregate(self, node: EventAggregate) -> Verdict:
        feed = self.state.get("f", {}).get(feed_id(node))
        words = self.reasons
        label = ""
        if words:
            label = f"{node.measure}({node.event}{'.' + node.of if node.of else ''}"
            label += f", {format_duration_us(node.within_us)})" if node.within_us else ", lifetime)"
        next_us: int | None = None
        groups: dict[str, list[Any]] = {}
        if node.within_us is not None:
            cutoff = self.now_us - node.within_us
            for ts, value, group in feed or ():
                if ts > self.now_us:
                    next_us = _earliest(next_us, ts)
                    continue
                if ts <= cutoff:
                    continue
                next_us = _earliest(next_us, ts + node.within_us)
                groups.setdefault(group or "", []).append((ts, value))
            measured = {g: self._measure_entries(node, entries) for g, entries in groups.items()}
        else:
            measured = {g: self._measure_lifetime(node, agg) for g, agg in (feed or {}).items()}
        if node.per is None:
            value = measured.get("", self._empty(node))
            ok = compare(value, node.compare)
            if node.measure == "last" and value is not None and not ok and node.compare.op == "gt":
                next_us = _earliest(next_us, self.now_us - value + node.compare.operand + 1)
            return Verdict(ok, f"{label} = {_show(value)} {node.compare.describe()}" if words else "", next_us)
        qualifying = {g: v for g, v in measured.items() if compare(v, node.compare)}
        if not qualifying:
            if not words:
                return Verdict(False, "", next_us)
            best = max(measured.items(), key=lambda kv: (kv[1] or 0, kv[0]), default=None)
            shown = f"{best[1]} for {node.per} {best[0]}" if best else "nothing"
            return Verdict(False, f"{label} per {node.per}: {shown}, none {node.compare.describe()}", next_us)
        group, value = max(qualifying.items(), key=lambda kv: (kv[1], kv[0]))
        reason = f"{label} for {node.per} {group} = {_show(value)} {node.compare.describe()}" if words else ""
        return Verdict(True, reason, next_us, data={node.per: group})

    def _empty(self, node: EventAggregate) -> Any:
        return None if node.measure == "last" else 0

    def _measure_entries(self, node: EventAggregate, entries: list[Any]) -> Any:
        if node.measure == "count":
            return len(entries)
        if node.measure == "sum":
            return sum(v for _, v in entries)
        if node.measure == "distinct":
            return len({v for _, v in entries if v is not None})
        return self.now_us - max(ts for ts, _ in entries)

    def _measure_lifetime(self, node: EventAggregate, agg: dict[str, Any]) -> Any:
        if node.measure == "count":
            return agg["n"]
        if node.measure == "sum":
            return agg["s"]
        if node.measure == "distinct":
            return len(agg["d"])
        return None if agg["l"] is None else self.now_us - agg["l"]

    def _pattern(self, node: Pattern) -> Verdict:
        entities = self.state.get("f", {}).get(feed_id(node)) or {}
        facets: dict[str, dict[str, Any]] = {}
        next_us: int | None = None
        words = self.reasons
        closers = "/".join(node.not_followed_by) if words else ""
        within = format_duration_us(node.within_us) if words else ""
        for entity, slot in entities.items():
            closes = [order for order in map(closing_order, slot["c"]) if order[0] <= self.now_us]
            for first in sorted(slot["f"], key=opening_order):
                ts, props = first[0], first[1]
                opened = opening_order(first)
                if ts > self.now_us:  # not seen yet: the rule looks again when the clock reaches it
                    next_us = _earliest(next_us, ts)
                    continue
                if any(closed > opened for closed in closes):
                    continue
                due, leaves = ts + node.within_us, ts + node.leaves_after_us
                if self.now_us < due:
                    next_us = _earliest(next_us, due)
                elif self.now_us < leaves:
                    next_us = _earliest(next_us, leaves)
                    if entity not in facets:
                        facets[entity] = {
                            "data": {node.same: entity, "at_us": ts, "properties": props},
                            "reason": f"{node.first} of {node.same} {entity} with no {closers} within {within}"
                            if words else "",
                        }
        if not words:
            return Verdict(bool(facets), "", next_us, facets or None)
        if facets:
            return Verdict(True, f"{len(facets)} open {node.first} without {closers} within {within}", next_us,
                           facets)
        return Verdict(False, f"no {node.first} left without {closers} within {within}", next_us, None)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)

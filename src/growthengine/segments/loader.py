"""Segments from YAML: every rule checked on load; every problem reported with its path and line."""

from __future__ import annotations

import functools
import hashlib
from typing import Any, get_args

import orjson

from growthengine.config.errors import ConfigIssue
from growthengine.config.problems import ItemProblems, Problems, item_issues
from growthengine.config.yaml_lines import Path, format_path, line_of
from growthengine.domain.tracking_plan import KNOWN_TRAITS, property_type
from growthengine.segments.durations import DurationError, parse_duration_us
from growthengine.segments.model import (
    ActiveDays,
    All,
    AnyOf,
    Compare,
    Comparison,
    Condition,
    EventAggregate,
    Inactive,
    InSegment,
    Not,
    Pattern,
    PropertyFilter,
    Refresh,
    Segment,
    TraitCondition,
)

COMPARISONS: tuple[str, ...] = get_args(Comparison)
NUMERIC = ("gt", "gte", "lt", "lte")
REFRESHES: tuple[str, ...] = get_args(Refresh)
_NODE_KEYS = ("all", "any", "not", "trait", "event", "inactive", "active_days", "pattern", "segment")


class _Invalid(ItemProblems):
    """One problem, where nothing more of the part can be checked."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__([(path, message)])


class SegmentLoader:
    """Turns the ``segments:`` block of a config into :class:`Segment` objects."""

    def __init__(self, file: str, lines: dict[Path, int]) -> None:
        self.file = file
        self.lines = lines
        self.issues: list[ConfigIssue] = []
        self.refused: set[str] = set()

    def _issue(self, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, format_path(path), message, line_of(self.lines, path)))

    def load(self, block: Any, base: Path = ("segments",), *, check_references: bool = True) -> dict[str, Segment]:
        """The block's segments; ``check_references`` off when they are checked later with other documents'."""
        segments: dict[str, Segment] = {}
        if block is None:
            return segments
        if not isinstance(block, dict):
            self._issue(base, "must be a mapping of segment key to definition")
            return segments
        for key, spec in block.items():
            path = (*base, key)
            try:
                segments[str(key)] = self._segment(str(key), spec, path)
            except ItemProblems as exc:  # every problem of the segment, not only the first, in line order
                found = [(line_of(self.lines, where) or 0, i, where, message)
                         for i, (where, message) in enumerate(item_issues(exc.problems))]
                for _, _, where, message in sorted(found):
                    self._issue(where, message)
                self.refused.add(str(key))
        if check_references:
            self.check_references(segments, base)
        return segments

    def _segment(self, key: str, spec: Any, path: Path) -> Segment:
        problems = Problems()
        if not key.replace("_", "").isalnum() or not key[:1].isalpha():
            problems.add(path, "a segment key is letters, digits and underscores, starting with a letter")
        if not isinstance(spec, dict):
            raise problems.refuse(path, "a segment is a mapping with name, refresh and a condition")
        comparisons = COMPARISONS if "trait" in spec else ()  # a trait condition on its own: {trait: x, eq: y}
        extra = sorted(set(map(str, spec)) - {"name", "refresh", "description", "leaves_after", *_NODE_KEYS, "where",
                                               "count", "sum", "distinct", "last", "within", "per", *comparisons})
        conditions = [k for k in _NODE_KEYS if k in spec]
        for field in extra:
            hint = "" if conditions else f"; a segment's condition is one of {', '.join(_NODE_KEYS)}"
            problems.add((*path, field), f"unknown field {field!r}{hint}")
        refresh = spec.get("refresh", "realtime")
        if refresh not in REFRESHES:
            problems.add((*path, "refresh"), f"refresh must be one of {', '.join(REFRESHES)}; got {refresh!r}")
        body = {k: v for k, v in spec.items() if k not in ("name", "refresh", "description", "leaves_after")}
        if "pattern" in body:
            body["leaves_after"] = spec.get("leaves_after")
        elif "leaves_after" in spec:
            problems.add((*path, "leaves_after"), "leaves_after applies only to a pattern segment")
        # Unknown fields and no condition: the unknown fields say it (no second problem for the same mistake).
        condition = problems.check(lambda: self._condition(body, path)) if conditions or not extra else None
        name = spec.get("name", key)
        if not isinstance(name, str):
            problems.add((*path, "name"), "name must be text")
        problems.done()
        assert condition is not None and isinstance(name, str)
        canonical = orjson.dumps({"refresh": refresh, "rule": repr(condition)}, option=orjson.OPT_SORT_KEYS)
        return Segment(key=key, name=name, refresh=refresh, condition=condition,
                       description=str(spec.get("description", "")),
                       version=hashlib.sha1(canonical, usedforsecurity=False).hexdigest()[:12])

    def _condition(self, spec: Any, path: Path) -> Condition:
        if not isinstance(spec, dict):
            raise _Invalid(path, "a condition is a mapping (all, any, not, trait, event, inactive, active_days, "
                                 "pattern or segment)")
        kinds = [k for k in _NODE_KEYS if k in spec]
        if len(kinds) != 1:
            unknown = [k for k in spec if k not in (*_NODE_KEYS, "where", "count", "sum", "distinct", "last",
                                                    "within", "per", "leaves_after", *COMPARISONS)]
            if unknown:
                raise _Invalid((*path, unknown[0]), f"unknown operator {unknown[0]!r}; conditions are "
                                                     f"{', '.join(_NODE_KEYS)}")
            raise _Invalid(path, f"a condition needs exactly one of {', '.join(_NODE_KEYS)}; got "
                                 f"{', '.join(kinds) or 'none'}")
        kind = kinds[0]
        if kind in ("all", "any"):
            items = spec[kind]
            if not isinstance(items, list) or not items:
                raise _Invalid((*path, kind), f"{kind} takes a non-empty list of conditions")
            parsed: list[Condition] = []
            problems = Problems()
            problems.check(lambda: self._no_extra(spec, path, {kind}))
            for i, item in enumerate(items):  # report every bad item, not only the first
                condition = problems.check(functools.partial(self._condition, item, (*path, kind, i)))
                if condition is not None:
                    parsed.append(condition)
            problems.done()
            return All(tuple(parsed)) if kind == "all" else AnyOf(tuple(parsed))
        if kind == "not":
            self._no_extra(spec, path, {"not"})
            return Not(self._condition(spec["not"], (*path, "not")))
        if kind == "segment":
            self._no_extra(spec, path, {"segment"})
            if not isinstance(spec["segment"], str):
                raise _Invalid((*path, "segment"), "segment names another segment's key")
            return InSegment(spec["segment"])
        if kind == "trait":
            return self._trait(spec, path)
        if kind == "inactive":
            self._no_extra(spec, path, {"inactive"})
            return Inactive(self._duration(spec["inactive"], (*path, "inactive")))
        if kind == "active_days":
            self._no_extra(spec, path, {"active_days"})
            body = spec["active_days"]
            if not isinstance(body, dict) or "within" not in body:
                raise _Invalid((*path, "active_days"), "active_days needs a comparison and within, "
                                                       "e.g. {gte: 10, within: 60d}")
            problems = Problems()
            compare = problems.check(lambda: self._compare({k: v for k, v in body.items() if k != "within"},
                                                           (*path, "active_days"), numeric=True))
            within = problems.check(lambda: self._duration(body["within"], (*path, "active_days", "within")))
            problems.done()
            assert compare is not None and within is not None
            return ActiveDays(compare, within)
        if kind == "pattern":
            return self._pattern(spec, path)
        return self._aggregate(spec, path)

    def _no_extra(self, spec: dict[str, Any], path: Path, allowed: set[str]) -> None:
        extra = sorted(set(map(str, spec)) - allowed)
        if extra:
            raise ItemProblems([((*path, field), f"unexpected field {field!r} here") for field in extra])

    def _duration(self, value: Any, path: Path) -> int:
        try:
            return parse_duration_us(value)
        except DurationError as exc:
            raise _Invalid(path, str(exc)) from None

    def _compare(self, spec: Any, path: Path, *, numeric: bool = False, kind: str | None = None) -> Compare:
        if not isinstance(spec, dict) or len(spec) != 1:
            raise _Invalid(path, f"needs exactly one comparison ({', '.join(COMPARISONS)}), e.g. {{gt: 20}}")
        op, operand = next(iter(spec.items()))
        if op not in COMPARISONS:
            raise _Invalid((*path, op), f"unknown operator {op!r}; use one of {', '.join(COMPARISONS)}")
        is_number = isinstance(operand, (int, float)) and not isinstance(operand, bool)
        if (numeric or op in NUMERIC or kind == "number") and op in (*NUMERIC, "eq", "ne") and not is_number:
            raise _Invalid((*path, op), f"{op} needs a number here; got {operand!r}")
        if op in ("in", "not_in") and not isinstance(operand, list):
            raise _Invalid((*path, op), f"{op} needs a list")
        if kind == "string" and op in NUMERIC:
            raise _Invalid((*path, op), f"{op} compares numbers, but this property is text")
        if kind == "boolean" and op not in ("eq", "ne", "exists"):
            raise _Invalid((*path, op), f"{op} does not apply to a true/false value")
        if op == "exists" and not isinstance(operand, bool):
            raise _Invalid((*path, op), "exists takes true or false")
        return Compare(op, operand)

    def _trait(self, spec: dict[str, Any], path: Path) -> TraitCondition:
        trait = spec["trait"]
        if not isinstance(trait, str):
            raise _Invalid((*path, "trait"), "trait names a profile trait")
        rest = {k: v for k, v in spec.items() if k != "trait"}
        return TraitCondition(trait, self._compare(rest, path, kind=KNOWN_TRAITS.get(trait)))

    def _aggregate(self, spec: dict[str, Any], path: Path) -> EventAggregate:
        problems = Problems()
        event = spec["event"]
        if not isinstance(event, str) or not event:
            problems.add((*path, "event"), "event names an event, e.g. item_viewed")
            event = ""
        measures = [m for m in ("count", "sum", "distinct", "last") if m in spec]
        problems.check(lambda: self._no_extra(spec, path, {"event", "where", "within", "per", *measures}))
        measured: tuple[Compare, str | None] | None = None
        if len(measures) != 1:
            problems.add(path, "an event condition needs exactly one of count, sum, distinct, last")
        else:
            measured = problems.check(lambda: self._measure(event, measures[0], spec[measures[0]],
                                                            (*path, measures[0])))
        within = None
        if spec.get("within") not in (None, "lifetime"):
            within = problems.check(lambda: self._duration(spec["within"], (*path, "within")))
        per = spec.get("per")
        if per is not None and not isinstance(per, str):
            problems.add((*path, "per"), "per names the property to group by, e.g. province")
        where = problems.check(lambda: self._where(event, spec.get("where"), (*path, "where")))
        problems.done()
        assert measured is not None and where is not None
        compare, of = measured
        return EventAggregate(event=event, measure=measures[0], compare=compare, of=of, within_us=within,
                              where=where, per=per)

    def _measure(self, event: str, measure: str, body: Any, mpath: Path) -> tuple[Compare, str | None]:
        """The comparison of ``count``, ``sum``, ``distinct`` or ``last``, and the property it is ``of``."""
        if not isinstance(body, dict):
            raise _Invalid(mpath, f"{measure} takes a mapping, e.g. {{gt: 20}}")
        problems = Problems()
        of = body.get("of")
        if measure in ("sum", "distinct"):
            if not isinstance(of, str):
                problems.add(mpath, f"{measure} needs 'of: <property>'")
            else:
                declared = property_type(event, of)
                if measure == "sum" and declared not in (None, "number"):
                    problems.add((*mpath, "of"), f"{event}.{of} is {declared}; sum needs a number property")
        elif of is not None:
            problems.add((*mpath, "of"), f"{measure} takes no 'of'")
        rest = {k: v for k, v in body.items() if k != "of"}
        compare: Compare | None
        if measure == "last":
            if set(rest) - {"more_than", "less_than"} or len(rest) != 1:
                raise problems.refuse(mpath, "last takes more_than or less_than a duration, e.g. {more_than: 30d}")
            op, value = next(iter(rest.items()))
            duration = problems.check(lambda: self._duration(value, (*mpath, op)))
            compare = None if duration is None else Compare("gt" if op == "more_than" else "lt", duration)
        else:
            compare = problems.check(lambda: self._compare(rest, mpath, numeric=True))
        problems.done()
        assert compare is not None
        return compare, of if isinstance(of, str) else None

    def _where(self, event: str, spec: Any, path: Path) -> tuple[PropertyFilter, ...]:
        if spec is None:
            return ()
        if not isinstance(spec, dict):
            raise _Invalid(path, "where is a mapping of property to value or comparison")
        filters = []
        problems = Problems()
        for prop, cond in spec.items():
            declared = property_type(event, str(prop))
            compare = problems.check(functools.partial(
                self._compare, cond if isinstance(cond, dict) else {"eq": cond}, (*path, prop), kind=declared))
            if compare is not None:
                filters.append(PropertyFilter(str(prop), compare))
        problems.done()
        return tuple(filters)

    def _pattern(self, spec: dict[str, Any], path: Path) -> Pattern:
        problems = Problems()
        problems.check(lambda: self._no_extra(spec, path, {"pattern", "leaves_after"}))
        body = spec["pattern"]
        ppath = (*path, "pattern")
        if not isinstance(body, dict):
            raise problems.refuse(ppath, "pattern is {first, not_followed_by, within, same}")
        for field in sorted(set(map(str, body)) - {"first", "not_followed_by", "within", "same"}):
            problems.add((*ppath, field), f"unknown field {field!r} in a pattern")
        first, closers, same = body.get("first"), body.get("not_followed_by"), body.get("same")
        if not isinstance(first, str):
            problems.add((*ppath, "first"), "first names the event that opens the pattern")
        if isinstance(closers, str):
            closers = [closers]
        if not isinstance(closers, list) or not closers or not all(isinstance(c, str) for c in closers):
            problems.add((*ppath, "not_followed_by"), "not_followed_by is a list of event names")
        if not isinstance(same, str):
            problems.add((*ppath, "same"), "same names the entity property, e.g. listing_id")
        within = problems.check(lambda: self._duration(body.get("within"), (*ppath, "within")))
        leaves = spec.get("leaves_after")
        leaves_us = None
        if leaves is None:
            problems.add(path, "a pattern segment needs leaves_after, e.g. 7d")
        else:
            leaves_us = problems.check(lambda: self._duration(leaves, (*path, "leaves_after")))
        problems.done()
        assert isinstance(first, str) and isinstance(closers, list) and isinstance(same, str)
        assert within is not None and leaves_us is not None
        return Pattern(first=first, not_followed_by=tuple(closers), same=same, within_us=within,
                       leaves_after_us=leaves_us)

    def check_references(self, segments: dict[str, Segment], base: Path = ("segments",),
                         only: set[str] | None = None) -> None:
        """Unknown segments referred to, and cycles, among ``segments``; reported for the keys in ``only`` (all by
        default)."""
        graph = {key: sorted(_references(seg.condition)) for key, seg in segments.items()}
        for key, refs in graph.items():
            if only is not None and key not in only:
                continue
            for ref in refs:
                if ref not in segments and ref not in self.refused:
                    self._issue((*base, key), f"refers to unknown segment {ref!r}")
        state: dict[str, int] = {}

        def visit(key: str, trail: list[str]) -> None:
            state[key] = 1
            for ref in graph.get(key, []):
                if state.get(ref) == 1 and (only is None or key in only):
                    cycle = " -> ".join([*trail[trail.index(ref):], ref]) if ref in trail else f"{key} -> {ref}"
                    self._issue((*base, key), f"segments refer to each other in a cycle: {cycle}")
                elif ref in graph and state.get(ref) is None:
                    visit(ref, [*trail, ref])
            state[key] = 2

        for key in graph:
            if state.get(key) is None:
                visit(key, [key])


def _references(condition: Condition) -> set[str]:
    if isinstance(condition, InSegment):
        return {condition.key}
    if isinstance(condition, (All, AnyOf)):
        return set().union(*(_references(c) for c in condition.items))
    if isinstance(condition, Not):
        return _references(condition.item)
    return set()


def dependency_order(segments: dict[str, Segment]) -> list[str]:
    """Segment keys so that every segment comes after the segments it refers to."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(key: str) -> None:
        if key in seen or key not in segments:
            return
        seen.add(key)
        for ref in sorted(_references(segments[key].condition)):
            visit(ref)
        order.append(key)

    for key in segments:
        visit(key)
    return order

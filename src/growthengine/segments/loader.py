"""Segments from YAML: every rule checked on load; every problem reported with its path and line."""

from __future__ import annotations

import hashlib
from typing import Any, get_args

import orjson

from growthengine.config.errors import ConfigIssue
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


class _Invalid(Exception):
    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class _Reported(Exception):
    """Problems inside were already recorded; the enclosing segment is refused."""


class SegmentLoader:
    """Turns the ``segments:`` block of a config into :class:`Segment` objects."""

    def __init__(self, file: str, lines: dict[Path, int]) -> None:
        self.file = file
        self.lines = lines
        self.issues: list[ConfigIssue] = []
        self.refused: set[str] = set()

    def _issue(self, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, format_path(path), message, line_of(self.lines, path)))

    def load(self, block: Any, base: Path = ("segments",)) -> dict[str, Segment]:
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
            except _Invalid as exc:
                self._issue(exc.path, exc.message)
                self.refused.add(str(key))
            except _Reported:
                self.refused.add(str(key))
        self._check_references(segments, base)
        return segments

    def _segment(self, key: str, spec: Any, path: Path) -> Segment:
        if not key.replace("_", "").isalnum() or not key[:1].isalpha():
            raise _Invalid(path, "a segment key is letters, digits and underscores, starting with a letter")
        if not isinstance(spec, dict):
            raise _Invalid(path, "a segment is a mapping with name, refresh and a condition")
        extra = set(spec) - {"name", "refresh", "description", "leaves_after", *_NODE_KEYS, "where", "count",
                             "sum", "distinct", "last", "within", "per"}
        if extra:
            raise _Invalid((*path, sorted(extra)[0]), f"unknown field {sorted(extra)[0]!r}")
        refresh = spec.get("refresh", "realtime")
        if refresh not in REFRESHES:
            raise _Invalid((*path, "refresh"), f"refresh must be one of {', '.join(REFRESHES)}; got {refresh!r}")
        body = {k: v for k, v in spec.items() if k not in ("name", "refresh", "description", "leaves_after")}
        if "pattern" in body:
            body["leaves_after"] = spec.get("leaves_after")
        elif "leaves_after" in spec:
            raise _Invalid((*path, "leaves_after"), "leaves_after applies only to a pattern segment")
        condition = self._condition(body, path)
        name = spec.get("name", key)
        if not isinstance(name, str):
            raise _Invalid((*path, "name"), "name must be text")
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
            self._no_extra(spec, path, {kind})
            parsed: list[Condition] = []
            failed = False
            for i, item in enumerate(items):
                try:
                    parsed.append(self._condition(item, (*path, kind, i)))
                except _Invalid as exc:  # report every bad item, not only the first
                    self._issue(exc.path, exc.message)
                    failed = True
                except _Reported:
                    failed = True
            if failed:
                raise _Reported
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
            compare = self._compare({k: v for k, v in body.items() if k != "within"}, (*path, "active_days"),
                                    numeric=True)
            return ActiveDays(compare, self._duration(body["within"], (*path, "active_days", "within")))
        if kind == "pattern":
            return self._pattern(spec, path)
        return self._aggregate(spec, path)

    def _no_extra(self, spec: dict[str, Any], path: Path, allowed: set[str]) -> None:
        extra = sorted(set(spec) - allowed)
        if extra:
            raise _Invalid((*path, extra[0]), f"unexpected field {extra[0]!r} here")

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
        event = spec["event"]
        if not isinstance(event, str) or not event:
            raise _Invalid((*path, "event"), "event names an event, e.g. item_viewed")
        measures = [m for m in ("count", "sum", "distinct", "last") if m in spec]
        self._no_extra(spec, path, {"event", "where", "within", "per", *measures})
        if len(measures) != 1:
            raise _Invalid(path, "an event condition needs exactly one of count, sum, distinct, last")
        measure = measures[0]
        body = spec[measure]
        mpath = (*path, measure)
        if not isinstance(body, dict):
            raise _Invalid(mpath, f"{measure} takes a mapping, e.g. {{gt: 20}}")
        of = body.get("of")
        if measure in ("sum", "distinct"):
            if not isinstance(of, str):
                raise _Invalid(mpath, f"{measure} needs 'of: <property>'")
            declared = property_type(event, of)
            if measure == "sum" and declared not in (None, "number"):
                raise _Invalid((*mpath, "of"), f"{event}.{of} is {declared}; sum needs a number property")
        elif of is not None:
            raise _Invalid((*mpath, "of"), f"{measure} takes no 'of'")
        rest = {k: v for k, v in body.items() if k != "of"}
        if measure == "last":
            if set(rest) - {"more_than", "less_than"} or len(rest) != 1:
                raise _Invalid(mpath, "last takes more_than or less_than a duration, e.g. {more_than: 30d}")
            op, value = next(iter(rest.items()))
            compare = Compare("gt" if op == "more_than" else "lt", self._duration(value, (*mpath, op)))
        else:
            compare = self._compare(rest, mpath, numeric=True)
        within = None
        if spec.get("within") not in (None, "lifetime"):
            within = self._duration(spec["within"], (*path, "within"))
        per = spec.get("per")
        if per is not None and not isinstance(per, str):
            raise _Invalid((*path, "per"), "per names the property to group by, e.g. province")
        return EventAggregate(event=event, measure=measure, compare=compare, of=of, within_us=within,
                              where=self._where(event, spec.get("where"), (*path, "where")), per=per)

    def _where(self, event: str, spec: Any, path: Path) -> tuple[PropertyFilter, ...]:
        if spec is None:
            return ()
        if not isinstance(spec, dict):
            raise _Invalid(path, "where is a mapping of property to value or comparison")
        filters = []
        for prop, cond in spec.items():
            declared = property_type(event, str(prop))
            compare = self._compare(cond if isinstance(cond, dict) else {"eq": cond}, (*path, prop),
                                    kind=declared)
            filters.append(PropertyFilter(str(prop), compare))
        return tuple(filters)

    def _pattern(self, spec: dict[str, Any], path: Path) -> Pattern:
        self._no_extra(spec, path, {"pattern", "leaves_after"})
        body = spec["pattern"]
        ppath = (*path, "pattern")
        if not isinstance(body, dict):
            raise _Invalid(ppath, "pattern is {first, not_followed_by, within, same}")
        extra = sorted(set(body) - {"first", "not_followed_by", "within", "same"})
        if extra:
            raise _Invalid((*ppath, extra[0]), f"unknown field {extra[0]!r} in a pattern")
        first, closers, same = body.get("first"), body.get("not_followed_by"), body.get("same")
        if not isinstance(first, str):
            raise _Invalid((*ppath, "first"), "first names the event that opens the pattern")
        if isinstance(closers, str):
            closers = [closers]
        if not isinstance(closers, list) or not closers or not all(isinstance(c, str) for c in closers):
            raise _Invalid((*ppath, "not_followed_by"), "not_followed_by is a list of event names")
        if not isinstance(same, str):
            raise _Invalid((*ppath, "same"), "same names the entity property, e.g. listing_id")
        leaves = spec.get("leaves_after")
        if leaves is None:
            raise _Invalid(path, "a pattern segment needs leaves_after, e.g. 7d")
        return Pattern(first=first, not_followed_by=tuple(closers), same=same,
                       within_us=self._duration(body.get("within"), (*ppath, "within")),
                       leaves_after_us=self._duration(leaves, (*path, "leaves_after")))

    def _check_references(self, segments: dict[str, Segment], base: Path) -> None:
        graph = {key: sorted(_references(seg.condition)) for key, seg in segments.items()}
        for key, refs in graph.items():
            for ref in refs:
                if ref not in segments and ref not in self.refused:
                    self._issue((*base, key), f"refers to unknown segment {ref!r}")
        state: dict[str, int] = {}

        def visit(key: str, trail: list[str]) -> None:
            state[key] = 1
            for ref in graph.get(key, []):
                if state.get(ref) == 1:
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

"""What each rule needs to remember about a user's events, kept small, and how an event updates it.

A user's segment state is one JSON document:

``{"a": {"last": us, "days": {"<local day ordinal>": us}}, "f": {feed_id: ...}, "m": {...}, "t": {...}}``

``a`` is activity (every activity event), ``f`` holds one entry per event rule (a *feed*, named by a hash of the
rule so an edited rule starts a fresh feed), ``m`` the user's memberships and ``t`` the pending timer per segment.

Every feed is folded in event time, so the state does not depend on the order events arrive in. A window keeps
its entries ``[ts, value, group]`` in time order (a late event is put in its place), so pruning it looks at its
first entry only. A pattern keeps,
per entity, its opening events ``[ts, properties, seq]`` and its closing events ``[ts, seq]`` (``seq`` is the log id:
events at the same instant are ordered by arrival, the same way live and in a rebuild), each for as long as it can
still change an answer.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import operator
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from growthengine.domain.events import Event
from growthengine.segments.model import (
    ActiveDays,
    All,
    AnyOf,
    Compare,
    Condition,
    EventAggregate,
    Not,
    Pattern,
    PropertyFilter,
    Segment,
)

State = dict[str, Any]
DAY_US = 86_400_000_000
_at = operator.itemgetter(0)
LAST_AT_INSTANT = 2**62
"""The arrival sequence of a closing event whose log id is unknown (state written before ids were kept): it follows
every opening event of its instant, as closers at the same instant always did."""


@lru_cache(maxsize=4096)
def feed_id(node: EventAggregate | Pattern) -> str:
    return hashlib.sha1(repr(node).encode(), usedforsecurity=False).hexdigest()[:10]


def compare(value: Any, cmp: Compare) -> bool:
    op, operand = cmp.op, cmp.operand
    try:
        if op == "eq":
            return bool(value == operand)
        if op == "ne":
            return bool(value != operand)
        if op == "exists":
            return bool((value is not None) == operand)
        if value is None:
            return False
        if op == "gt":
            return bool(value > operand)
        if op == "gte":
            return bool(value >= operand)
        if op == "lt":
            return bool(value < operand)
        if op == "lte":
            return bool(value <= operand)
        if op == "in":
            return bool(value in operand)
        if op == "not_in":
            return bool(value not in operand)
        if op == "contains":
            return bool(operand in value) if isinstance(value, (str, list, dict)) else False
    except TypeError:
        return False
    return False


def matches(properties: dict[str, Any], filters: tuple[PropertyFilter, ...]) -> bool:
    return all(compare(properties.get(f.prop), f.compare) for f in filters)


def entity_ids(properties: dict[str, Any], prop: str) -> list[str]:
    """The entity an event is about: ``listing_id`` directly, or each of ``listing_ids`` (a purchase)."""
    value = properties.get(prop)
    if value is not None and not isinstance(value, (list, dict)):
        return [str(value)]
    plural = properties.get(prop + "s")
    if isinstance(plural, list):
        return [str(v) for v in plural if v is not None and not isinstance(v, (list, dict))]
    return []


@lru_cache(maxsize=256)
def zone_for(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("Asia/Bangkok")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DAYS_KEPT = 1024
_days: dict[str, tuple[int, int, int]] = {}
"""Per zone, the last local day worked out: ``(first us, end us, ordinal)`` (kept only for a day of one offset)."""


def local_day(ts_us: int, tz: str) -> int:
    span = _days.get(tz)
    if span is not None and span[0] <= ts_us < span[1]:
        return span[2]
    zone = zone_for(tz)
    local = (_EPOCH + dt.timedelta(microseconds=ts_us)).astimezone(zone)
    ordinal = local.date().toordinal()
    start = ts_us - ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 - local.microsecond
    end = start + DAY_US
    offset = local.utcoffset()
    if all((_EPOCH + dt.timedelta(microseconds=edge)).astimezone(zone).utcoffset() == offset
           for edge in (start, end - 1)):  # no change of offset that day: every instant of it is this day
        if len(_days) >= _DAYS_KEPT:
            _days.clear()
        _days[tz] = (start, end, ordinal)
    return ordinal


@dataclass(frozen=True)
class FeedPlan:
    """Which feeds each event name updates, and how far back each must remember."""

    aggregates: dict[str, list[tuple[str, EventAggregate]]]
    patterns: dict[str, list[tuple[str, Pattern, str]]]  # event -> (feed id, pattern, "first"|"close")
    activity_window_us: int
    feed_ids: frozenset[str]

    @classmethod
    def build(cls, segments: Iterable[Segment]) -> FeedPlan:
        aggregates: dict[str, list[tuple[str, EventAggregate]]] = {}
        patterns: dict[str, list[tuple[str, Pattern, str]]] = {}
        window = 0
        ids: set[str] = set()
        for segment in segments:
            for node in walk(segment.condition):
                if isinstance(node, EventAggregate):
                    fid = feed_id(node)
                    if fid not in ids:
                        aggregates.setdefault(node.event, []).append((fid, node))
                    ids.add(fid)
                elif isinstance(node, Pattern):
                    fid = feed_id(node)
                    if fid not in ids:
                        patterns.setdefault(node.first, []).append((fid, node, "first"))
                        for closer in node.not_followed_by:
                            patterns.setdefault(closer, []).append((fid, node, "close"))
                    ids.add(fid)
                elif isinstance(node, ActiveDays):
                    window = max(window, node.within_us)
        return cls(aggregates, patterns, window, frozenset(ids))

    @property
    def pattern_feeds(self) -> frozenset[str]:
        """The patterns' feeds (replaced whole when they change, never edited in place)."""
        return frozenset(fid for entries in self.patterns.values() for fid, _, _ in entries)


def walk(condition: Condition) -> Iterable[Condition]:
    yield condition
    if isinstance(condition, (All, AnyOf)):
        for item in condition.items:
            yield from walk(item)
    elif isinstance(condition, Not):
        yield from walk(condition.item)


def apply_event(state: State, event: Event, plan: FeedPlan, tz: str) -> None:
    """Fold one event into a user's state (order-independent: back-filled events land where they belong)."""
    ts = event.ts_us
    if event.is_activity:
        activity = state.get("a")
        if activity is None:
            activity = state["a"] = {"last": None, "days": {}}
        last = activity["last"]
        if last is None or ts > last:
            activity["last"] = ts
        if plan.activity_window_us:
            day = str(local_day(ts, tz))
            days = activity["days"]
            if days.get(day, -1) < ts:
                days[day] = ts
    feeds = state.get("f")
    if feeds is None:
        feeds = state["f"] = {}
    props = event.properties
    name = event.name
    aggregates = plan.aggregates.get(name)
    if aggregates:
        for fid, node in aggregates:
            if node.where and not matches(props, node.where):
                continue
            _add_to_aggregate(feeds, fid, node, event)
    patterns = plan.patterns.get(name)
    if not patterns:
        return
    for fid, pattern, role in patterns:
        # A pattern's feed is replaced, not edited, when it changes (state_document.py encodes it again only then).
        entities = feeds[fid] = dict(feeds.get(fid) or {})
        for entity in entity_ids(props, pattern.same):
            slot = entities.setdefault(entity, {"f": [], "c": []})
            if role == "first":
                slot["f"].append([event.ts_us, props, event.id or 0])
            else:
                slot["c"].append([event.ts_us, LAST_AT_INSTANT if event.id is None else event.id])


def opening_order(first: list[Any]) -> tuple[int, int]:
    """Where an opening event ``[ts, properties, seq]`` stands in event time (ts, then arrival)."""
    return (first[0], first[2] if len(first) > 2 else 0)


def closing_order(closer: Any) -> tuple[int, int]:
    """Where a closing event ``[ts, seq]`` stands in event time (a bare ts: stored before sequences were kept)."""
    if isinstance(closer, int):
        return (closer, LAST_AT_INSTANT)
    return (closer[0], closer[1])


def _measure_value(node: EventAggregate, props: dict[str, Any]) -> Any:
    if node.measure == "sum":
        value = props.get(node.of or "")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                return float(value) if isinstance(value, str) else 0
            except ValueError:
                return 0
        return value
    if node.measure == "distinct":
        value = props.get(node.of or "")
        return None if value is None else str(value)
    return 1


def _add_to_aggregate(feeds: dict[str, Any], fid: str, node: EventAggregate, event: Event) -> None:
    group = None
    if node.per is not None:
        raw = event.properties.get(node.per)
        if raw is None:
            return
        group = str(raw)
    value = _measure_value(node, event.properties)
    if node.within_us is not None:
        entry = [event.ts_us, value, group]
        entries = feeds.get(fid)
        if entries is None:
            feeds[fid] = [entry]
        elif not entries or entries[-1][0] <= entry[0]:
            entries.append(entry)  # in time order: the window grows at its end, in place
        else:  # a late event: a new list, in time order (state_document.py relies on windows only growing in place)
            entries = list(entries)
            bisect.insort(entries, entry, key=_at)
            feeds[fid] = entries
        return
    feed = feeds.setdefault(fid, {})
    agg = feed.setdefault(group or "", {"n": 0, "s": 0, "d": [], "l": None})
    agg["n"] += 1
    if node.measure == "sum":
        agg["s"] += value
    elif node.measure == "distinct" and value is not None and value not in agg["d"]:
        agg["d"].append(value)
    if agg["l"] is None or event.ts_us > agg["l"]:
        agg["l"] = event.ts_us


def prune(state: State, plan: FeedPlan, segments: Iterable[Segment], now_us: int) -> None:
    """Forget what can never matter again (windows only slide forward), and feeds no rule uses any more."""
    drop_unused_feeds(state, plan)
    feeds = state.get("f", {})
    for segment in segments:
        for node in walk(segment.condition):
            if isinstance(node, EventAggregate) and node.within_us is not None:
                prune_window(feeds, feed_id(node), node.within_us, now_us)
            elif isinstance(node, Pattern):
                prune_pattern(feeds, feed_id(node), node.leaves_after_us, now_us)
    prune_activity(state, plan)


PruneSpec = tuple[str, int]
"""How a feed forgets: ``("window", within_us)`` or ``("pattern", leaves_after_us)``; lifetime feeds keep all."""


def prune_specs(segments: Iterable[Segment]) -> dict[str, PruneSpec]:
    """Each feed that forgets, by feed id (what :func:`prune` walks the rules for, found once)."""
    specs: dict[str, PruneSpec] = {}
    for segment in segments:
        for node in walk(segment.condition):
            if isinstance(node, EventAggregate) and node.within_us is not None:
                specs[feed_id(node)] = ("window", node.within_us)
            elif isinstance(node, Pattern):
                specs[feed_id(node)] = ("pattern", node.leaves_after_us)
    return specs


def prune_feeds(state: State, fids: Iterable[str], specs: dict[str, PruneSpec], now_us: int) -> None:
    """:func:`prune` for the named feeds only (those an event or a timer touched)."""
    feeds = state.get("f")
    if not feeds:
        return
    for fid in fids:
        spec = specs.get(fid)
        if spec is None:
            continue
        if spec[0] == "window":
            prune_window(feeds, fid, spec[1], now_us)
        else:
            prune_pattern(feeds, fid, spec[1], now_us)


def read_back(state: State, plan: FeedPlan) -> None:
    """A state read from the database, made ready to fold events into: the feeds no rule uses dropped, and every
    window in time order (ties in their stored order; states written before windows were kept in order)."""
    drop_unused_feeds(state, plan)
    for feed in state.get("f", {}).values():
        if isinstance(feed, list):
            feed.sort(key=_at)


def drop_unused_feeds(state: State, plan: FeedPlan) -> None:
    """Forget the feeds no rule uses any more (a rule edited or removed)."""
    feeds = state.get("f", {})
    for fid in [f for f in feeds if f not in plan.feed_ids]:
        del feeds[fid]


def prune_window(feeds: dict[str, Any], fid: str, within_us: int, now_us: int) -> None:
    entries = feeds.get(fid)
    if entries:
        cutoff = now_us - within_us
        if entries[0][0] <= cutoff:  # in time order (apply_event, read_back): most often nothing left the window
            feeds[fid] = entries[bisect.bisect_right(entries, cutoff, key=_at):]


def prune_pattern(feeds: dict[str, Any], fid: str, leaves_after_us: int, now_us: int) -> None:
    entities = feeds.get(fid)
    if not entities:
        return
    horizon = now_us - leaves_after_us
    changed = False
    gone: list[str] = []
    for entity, slot in entities.items():
        # An opening event older than leaves_after can never make a member again; a closing event matters to
        # openings at or before it, so it is kept as long as such an opening could still arrive late and count
        # (a purchase may come before its earlier add_to_cart).
        openings, closers = slot["f"], slot["c"]
        if openings and min(openings, key=_at)[0] <= horizon:
            slot["f"] = openings = [f for f in openings if f[0] > horizon]
            changed = True
        if closers and any(closing_order(c)[0] <= horizon for c in closers):
            slot["c"] = closers = [c for c in closers if closing_order(c)[0] > horizon]
            changed = True
        if not openings and not closers:
            gone.append(entity)
    for entity in gone:
        del entities[entity]
        changed = True
    if changed:
        feeds[fid] = dict(entities)  # replaced, not edited (see apply_event)


def prune_activity(state: State, plan: FeedPlan) -> None:
    """Keep the active days inside the longest window before the last activity."""
    activity = state.get("a")
    if activity and activity["last"] is not None and plan.activity_window_us:
        cutoff = activity["last"] - plan.activity_window_us
        days = activity["days"]
        if any(ts <= cutoff for ts in days.values()):
            activity["days"] = {d: ts for d, ts in days.items() if ts > cutoff}

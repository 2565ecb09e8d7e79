"""The part of a user's segment state the evaluator reads, made from a set-based rebuild's aggregates: the rebuild
words its members' reasons and data with the Python evaluator itself, run on this small state, so they read exactly
as the incremental engine words them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from growthengine.segments.feeds import State, feed_id
from growthengine.segments.model import ActiveDays, EventAggregate, InSegment, Pattern
from growthengine.segments.sql_compile import CompiledSegment
from growthengine.segments.sql_plan import Leaf


def _number(value: Any, is_float: Any) -> Any:
    if value is None:
        return 0
    if isinstance(value, (int, float)):
        return value
    return float(value) if is_float else int(value)  # PostgreSQL's numeric


def _days(last: int, counts: list[tuple[int, int]]) -> dict[str, int]:
    """Activity days such that, for each (within, n), n of them fall after ``last - within``."""
    days: dict[str, int] = {}
    previous_within, previous_n = 0, 0
    for within, n in sorted(counts):
        at = last - previous_within
        for _ in range(max(0, n - previous_n)):
            days[str(len(days))] = at
        previous_within, previous_n = within, max(n, previous_n)
    return days


Opens = dict[str, dict[str, dict[str, list[Any]]]]
"""Per pattern leaf (alias): user -> entity -> the opening event ``[ts, properties]`` that keeps it open."""


@dataclass(frozen=True)
class Reader:
    """How one leaf's columns become part of the synthetic state (worked out once per segment, not per row)."""

    node: Any
    feed: str
    n: str
    last: str
    group: str
    total: str
    is_float: str
    distinct: str


def readers_of(compiled: CompiledSegment) -> list[tuple[Leaf, Reader]]:
    out = []
    for leaf in compiled.leaves:
        node, a = leaf.node, leaf.alias
        feed = feed_id(node) if isinstance(node, (EventAggregate, Pattern)) else ""
        out.append((leaf, Reader(node, feed, f"{a}_n", f"{a}_l", f"{a}_grp", f"{a}_s", f"{a}_fl", f"{a}_d")))
    return out


def synthetic_state(compiled: CompiledSegment, row: dict[str, Any], opens: Opens, as_of_us: int,
                    readers: list[tuple[Leaf, Reader]] | None = None) -> State:
    """The part of a user's segment state the evaluator reads, made from the query's aggregates (``readers``:
    ``readers_of(compiled)``, worked out once for all the rows)."""
    state: State = {"f": {}, "m": {}}
    feeds = state["f"]
    last = row.get("act_last")
    day_counts: list[tuple[int, int]] = []
    for leaf, reader in readers if readers is not None else readers_of(compiled):
        node, a = leaf.node, leaf.alias
        if isinstance(node, ActiveDays):
            day_counts.append((node.within_us, int(row[f"{a}_days"] or 0)))
        elif isinstance(node, InSegment):
            if row[f"{a}_in"]:
                state["m"][node.key] = {"": [as_of_us, {}]}
        elif isinstance(node, Pattern):
            entities = opens.get(a, {}).get(row["user_id"], {})
            feeds[reader.feed] = {entity: {"f": [first], "c": []} for entity, first in entities.items()}
        elif isinstance(node, EventAggregate) and row[reader.n] is not None and reader.feed not in feeds:
            _aggregate_feed(feeds, node, reader, row)  # a rule written twice in one condition is one feed
    if last is not None:
        state["a"] = {"last": last, "days": _days(last, day_counts)}
    return state


def _aggregate_feed(feeds: dict[str, Any], node: EventAggregate, r: Reader, row: dict[str, Any]) -> None:
    n, ts = int(row[r.n]), int(row[r.last])
    group = row.get(r.group)
    total = _number(row.get(r.total), row.get(r.is_float))
    distinct = int(row.get(r.distinct) or 0)
    if node.within_us is None:
        feed = feeds.setdefault(r.feed, {})
        feed[group or ""] = {"n": n, "s": total, "d": list(range(distinct)), "l": ts}
        return
    entries: list[list[Any]]
    if node.measure == "count":
        entries = [[ts, 1, group]] * n
    elif node.measure == "sum":
        entries = [[ts, total, group]]
    elif node.measure == "distinct":
        entries = [[ts, i, group] for i in range(distinct)] or [[ts, None, group]]
    else:
        entries = [[ts, 1, group]]
    feeds.setdefault(r.feed, []).extend(entries)

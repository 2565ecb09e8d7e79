"""Pruning a user's feeds without walking a large pattern feed that cannot have anything to forget.

Every batch prunes what time has made useless from each feed of each user it touches (``feeds.py``): a window looks
at its first entry only (windows are kept in time order), but a pattern's feed (the open cart items, say) was
walked entity by entity, every batch, for every user with events. A pattern's feed is replaced, never edited,
whenever an event or a prune changes it (``feeds.apply_event``, ``feeds.prune_pattern``), so a feed that is still
the very object a prune last walked holds the same entries. For a large one (:data:`HORIZON_ENTITIES` open entities
or more) the time of its earliest opening or closing is kept after each walk beside the object, and the walk is
skipped while that time is after the horizon (``now - leaves_after``): nothing in it could be forgotten yet. What is
kept per user is dropped with the user's state (``state_cache.py``).
"""

from __future__ import annotations

from typing import Any

from growthengine.segments.feeds import PruneSpec, State, prune_pattern, prune_window

Horizons = dict[str, tuple[Any, int]]
"""Per pattern feed id: the feed (the very object) a prune last walked, and its earliest entry's time then."""

HORIZON_ENTITIES = 8
"""A pattern feed with this many open entities or more keeps its earliest time after a prune."""

_NEVER = 2**62


def prune_user_feeds(state: State, specs: dict[str, PruneSpec], now_us: int, horizons: Horizons | None) -> None:
    """``feeds.prune_feeds`` of every feed of the state, skipping the walk of a large pattern feed whose kept
    earliest time is after its horizon; ``horizons`` is the user's (``None``: walk every feed, keep nothing)."""
    feeds = state.get("f")
    if not feeds:
        return
    for fid in list(feeds):
        spec = specs.get(fid)
        if spec is None:
            continue
        if spec[0] == "window":
            prune_window(feeds, fid, spec[1], now_us)
            continue
        if horizons is None:
            prune_pattern(feeds, fid, spec[1], now_us)
            continue
        known = horizons.get(fid)
        if known is not None and known[0] is feeds[fid] and known[1] > now_us - spec[1]:
            continue
        prune_pattern(feeds, fid, spec[1], now_us)
        entities = feeds.get(fid)
        if entities and len(entities) >= HORIZON_ENTITIES:
            horizons[fid] = (entities, earliest_entry(entities))
        elif known is not None:
            del horizons[fid]


def earliest_entry(entities: dict[str, Any]) -> int:
    """The earliest time of any opening (``[ts, properties, seq]``) or closing (``[ts, seq]``, or a bare ts) in a
    pattern's feed."""
    earliest = _NEVER
    for slot in entities.values():
        for opening in slot["f"]:
            if opening[0] < earliest:
                earliest = opening[0]
        for closer in slot["c"]:
            at = closer if isinstance(closer, int) else closer[0]
            if at < earliest:
                earliest = at
    return earliest

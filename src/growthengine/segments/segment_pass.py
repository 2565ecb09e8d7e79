"""What one pass of the segment engine decides, and the timers it books and fires.

A pass (a batch of events, a group of due timers, a rebuild's chunk) gathers its transitions, membership changes and
timers in a :class:`PassBatch`, written together at its end (``SegmentEngine._effects``). A durable timer per
(segment, user) looks again when time alone could change the answer: :func:`look_at` and :func:`want_timer` book
it (keeping an earlier one), :func:`timers_fired` and :func:`closures` turn a group of fired timers into the users
and segments to look at again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from growthengine.segments.cadence import refresh_at_or_after
from growthengine.segments.feeds import State
from growthengine.segments.model import Segment
from growthengine.storage.segment_store import Membership, Origin, Transition
from growthengine.storage.timer_store import Timer

TIMER_KIND = "segment"


def timer_key(segment: str, user_id: str) -> str:
    """The one timer that looks again at a user's membership of a segment."""
    return f"seg:{segment}:{user_id}"


def late_note(lag_us: int) -> str:
    """Why a live entry starts no flow (in the transition's reason)."""
    minutes = lag_us // 60_000_000
    return f"found {minutes // 60} h {minutes % 60} min after its event time (more than flow_entry_max_lag): " \
        "starts no flow"


class PassBatch:
    """What one pass decided, written together at the end."""

    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self.members: list[Membership] = []
        self.removed: list[tuple[str, str, str]] = []
        self.timers: list[tuple[str, str, int, dict[str, Any]]] = []


def want_timer(batch: PassBatch, state: State, key: str, user_id: str, due_us: int, now_us: int,
               origin: Origin = "live") -> None:
    """Book a look at ``key`` for ``due_us``. A look booked to apply what imported history changed says so
    (``ti`` in the state, ``o`` in the timer): what it finds starts no flow, unless live work joins it."""
    pending = state.setdefault("t", {})
    imported = state.setdefault("ti", {}) if origin == "import" else state.get("ti", {})
    existing = pending.get(key)
    name = timer_key(key, user_id)
    if existing is not None and now_us <= existing <= due_us:
        # An earlier look is already booked; it will book the next one. Live work turns it into a live look.
        if origin != "import" and key in imported:
            del imported[key]
            if not imported:
                state.pop("ti", None)
            batch.timers.append((TIMER_KIND, name, existing, {"s": key, "u": user_id}))
        return
    pending[key] = due_us
    payload: dict[str, Any] = {"s": key, "u": user_id}
    if origin == "import":
        payload["o"] = origin
        imported[key] = due_us
    elif imported.pop(key, None) is not None and not imported:
        state.pop("ti", None)
    batch.timers.append((TIMER_KIND, name, due_us, payload))


def look_at(batch: PassBatch, state: State, segment: Segment, user_id: str, at_us: int, tz: str, now_us: int,
            origin: Origin = "live") -> None:
    """Book a look at the segment's first refresh instant at or after ``at_us`` (:func:`want_timer`), without
    working that instant out when an earlier look that stays as it is is booked already (most events)."""
    existing = state.get("t", {}).get(segment.key)
    if existing is not None and now_us <= existing <= at_us and (
            origin == "import" or segment.key not in state.get("ti", {})):
        return  # want_timer keeps it as it is: the refresh instant is never before at_us
    want_timer(batch, state, segment.key, user_id, refresh_at_or_after(segment.refresh, at_us, tz), now_us, origin)


def timers_fired(timers: Sequence[Timer], segments: Mapping[str, object]) -> tuple[dict[str, set[str]], set[str]]:
    """The fired timers as the segments to look at again per user (of segments that still exist), and the users
    with a look booked by live work (the others': imported history's, whose entries start no flow)."""
    wanted: dict[str, set[str]] = {}
    live: set[str] = set()
    for timer in timers:
        payload = timer.payload
        key, user_id = payload.get("s"), payload.get("u")
        if isinstance(key, str) and isinstance(user_id, str) and key in segments:
            keys = wanted.get(user_id)
            if keys is None:
                wanted[user_id] = keys = set()
            keys.add(key)
            if payload.get("o") != "import":
                live.add(user_id)
    return wanted, live


def closures(wanted: dict[str, set[str]], dependents: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Per user, the fired segments and every segment that refers to them (worked out once per set of fired
    segments)."""
    found: dict[frozenset[str], set[str]] = {}
    out: dict[str, set[str]] = {}
    for user_id, keys in wanted.items():
        group = frozenset(keys)
        closure = found.get(group)
        if closure is None:
            found[group] = closure = _with_dependents(keys, dependents)
        out[user_id] = closure
    return out


def _with_dependents(keys: set[str], dependents: Mapping[str, set[str]]) -> set[str]:
    out = set(keys)
    frontier = list(keys)
    while frontier:
        for dependent in dependents.get(frontier.pop(), ()):
            if dependent not in out:
                out.add(dependent)
                frontier.append(dependent)
    return out

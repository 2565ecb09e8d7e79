"""The incremental segment engine: events and timers in, exact memberships and transitions out.

Each event updates its user's compact state (``feeds.py``) and re-evaluates only the segments it can affect.
A durable timer per (segment, user) looks again when time alone could change the answer. Segments that refresh
hourly or daily apply their changes only at their refresh instants. Every enter and exit is stored with its
reason and handed to the transition listeners (the flow engine) in the same transaction.

State is kept in event time (``feeds.py``): a late event lands where it belongs. Every transition carries the event
time of its cause (the latest event that touched the segment, a pattern's deadline, or a timer's due time) and its
origin, so the flow engine starts flows only on fresh, live entries (``flow_entry_max_lag``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Protocol

from growthengine.clock import Clock, to_us
from growthengine.domain.events import Event
from growthengine.domain.profiles import Profile
from growthengine.segments.cadence import refresh_at_or_after
from growthengine.segments.evaluate import Evaluator
from growthengine.segments.feeds import FeedPlan, State, apply_event, prune, walk
from growthengine.segments.loader import dependency_order
from growthengine.segments.model import (
    ActiveDays,
    EventAggregate,
    Inactive,
    InSegment,
    Pattern,
    Segment,
    TraitCondition,
)
from growthengine.storage.segment_store import Membership, Origin, Transition
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

TIMER_KIND = "segment"
DEFAULT_ENTRY_MAX_LAG_US = 3_600_000_000


def timer_key(segment: str, user_id: str) -> str:
    """The one timer that looks again at a user's membership of a segment."""
    return f"seg:{segment}:{user_id}"


class TransitionListener(Protocol):
    """Hears every segment enter and exit, inside the transaction that made it (the flow engine is one)."""

    def on_transitions(self, tx: Tx, transitions: list[Transition]) -> None: ...


class SegmentEngine:
    def __init__(self, segments: dict[str, Segment], clock: Clock, business_timezone: str = "Asia/Bangkok",
                 transition_listeners: Iterable[TransitionListener] = (),
                 entry_max_lag_us: int = DEFAULT_ENTRY_MAX_LAG_US) -> None:
        self.clock = clock
        self.business_timezone = business_timezone
        self.entry_max_lag_us = entry_max_lag_us
        self.listeners: list[TransitionListener] = list(transition_listeners)
        self.configure(segments)

    def configure(self, segments: dict[str, Segment]) -> None:
        """Take a new (already validated) set of segments."""
        self.segments = dict(segments)
        self.order = dependency_order(self.segments)
        self.plan = FeedPlan.build(self.segments.values())
        by_event: dict[str, set[str]] = defaultdict(set)
        on_activity: set[str] = set()
        on_traits: set[str] = set()
        dependents: dict[str, set[str]] = defaultdict(set)
        for key, segment in self.segments.items():
            for node in walk(segment.condition):
                if isinstance(node, EventAggregate):
                    by_event[node.event].add(key)
                elif isinstance(node, Pattern):
                    for name in (node.first, *node.not_followed_by):
                        by_event[name].add(key)
                elif isinstance(node, (Inactive, ActiveDays)):
                    on_activity.add(key)
                elif isinstance(node, TraitCondition):
                    on_traits.add(key)
                elif isinstance(node, InSegment):
                    dependents[node.key].add(key)
        self._by_event = dict(by_event)
        self._on_activity = on_activity
        self._on_traits = on_traits
        self._dependents = dict(dependents)

    # Which segments an event can change ---------------------------------------------------------------

    def _affected(self, events: Iterable[Event]) -> dict[str, int]:
        """The segments these events can change, each with the event time of the latest event that touches it (a
        segment that refers to another takes its sources' time)."""
        causes: dict[str, int] = {}
        for event in events:
            keys = self._by_event.get(event.name, set())
            if event.is_activity:
                keys = keys | self._on_activity
            if event.type == "identify":
                keys = keys | self._on_traits
            for key in keys:
                if causes.get(key, event.ts_us - 1) < event.ts_us:
                    causes[key] = event.ts_us
        for key in self.order:  # referenced segments come first: their time reaches every dependent in one pass
            if key in causes:
                for dependent in self._dependents.get(key, ()):
                    if causes.get(dependent, causes[key] - 1) < causes[key]:
                        causes[dependent] = causes[key]
        return causes

    def _tz(self, traits: dict[str, Any]) -> str:
        tz = traits.get("timezone")
        return tz if isinstance(tz, str) and tz else self.business_timezone

    # Ingestion ----------------------------------------------------------------------------------------

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        by_user: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            by_user[event.user_id].append(event)
        states = tx.segments.load_states(list(by_user))
        now_us = to_us(self.clock.now())
        batch = _Batch()
        for user_id, user_events in by_user.items():
            profile = profiles.get(user_id)
            traits = profile.traits if profile else {}
            tz = self._tz(traits)
            state = states.setdefault(user_id, {})
            for event in user_events:
                apply_event(state, event, self.plan, tz)
            prune(state, self.plan, self.segments.values(), now_us)
            causes = self._affected(user_events)
            # History loaded by growth import builds state and memberships; its transitions start no flow.
            origin: Origin = "import" if all(e.origin == "import" for e in user_events) else "live"
            self._reconcile(batch, user_id, state, traits, now_us, set(causes), fired=set(), causes=causes,
                            origin=origin)
        self._flush(tx, batch, states, now_us)

    def on_merge_commands(self, tx: Tx, commands: list[Event]) -> None:
        """Per-user ``merge`` commands from the log: fold each user's history (up to the command) again."""
        for command in commands:
            anonymous = command.properties.get("anonymous")
            if isinstance(anonymous, str):
                self.on_merge(tx, anonymous, command.user_id, before_id=command.id)

    def on_merge(self, tx: Tx, anonymous_key: str, user_id: str, *, before_id: int | None = None) -> None:
        """The anonymous visitor's history now belongs to the user: fold the user's whole log again (the events
        stored before the merge; those after it follow as usual)."""
        tx.segments.delete_state(anonymous_key)
        tx.segments.delete_user_members(anonymous_key)
        profile = tx.profiles.get(user_id)
        traits = profile.traits if profile else {}
        old = tx.segments.load_states([user_id]).get(user_id, {})
        state: State = {"m": old.get("m", {}), "t": old.get("t", {}), "ti": old.get("ti", {})}
        tz = self._tz(traits)
        for event in tx.events.for_user(user_id, before_id=before_id):
            apply_event(state, event, self.plan, tz)
        now_us = to_us(self.clock.now())
        prune(state, self.plan, self.segments.values(), now_us)
        batch = _Batch()
        self._reconcile(batch, user_id, state, traits, now_us, set(self.segments), fired=set())
        self._flush(tx, batch, {user_id: state}, now_us)

    # Timers -------------------------------------------------------------------------------------------

    def on_timers(self, tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        """Time alone may have changed these users' memberships: look again, now that it is ``due``."""
        now_us = to_us(due)
        wanted: dict[str, set[str]] = defaultdict(set)
        live: set[str] = set()  # users with a look booked by live work (the others': imported history's)
        for timer in timers:
            key, user_id = timer.payload.get("s"), timer.payload.get("u")
            if isinstance(key, str) and isinstance(user_id, str) and key in self.segments:
                wanted[user_id].add(key)
                if timer.payload.get("o") != "import":
                    live.add(user_id)
        if not wanted:
            return
        states = tx.segments.load_states(list(wanted))
        profiles = tx.profiles.get_many(list(wanted))
        batch = _Batch()
        for user_id, keys in wanted.items():
            state = states.get(user_id)
            if state is None:
                continue
            pending = state.setdefault("t", {})
            imported = state.get("ti", {})
            for key in keys:
                pending.pop(key, None)  # this timer has fired; the store no longer holds it
                imported.pop(key, None)
            if not imported:
                state.pop("ti", None)
            profile = profiles.get(user_id)
            traits = profile.traits if profile else {}
            prune(state, self.plan, self.segments.values(), now_us)
            closure = self._with_dependents(keys)
            self._reconcile(batch, user_id, state, traits, now_us, closure, fired=keys,
                            origin="live" if user_id in live else "import")
        self._flush(tx, batch, {u: states[u] for u in wanted if u in states}, now_us)

    def _with_dependents(self, keys: set[str]) -> set[str]:
        out = set(keys)
        frontier = list(keys)
        while frontier:
            for dependent in self._dependents.get(frontier.pop(), ()):
                if dependent not in out:
                    out.add(dependent)
                    frontier.append(dependent)
        return out

    # The decision ---------------------------------------------------------------------------------------

    def _reconcile(self, batch: _Batch, user_id: str, state: State, traits: dict[str, Any], now_us: int,
                   keys: set[str], *, fired: set[str], force: bool = False, reason_prefix: str = "",
                   causes: dict[str, int] | None = None, origin: Origin = "live") -> None:
        """Evaluate ``keys`` for one user; apply now (real-time, a fired refresh, a rebuild) or schedule.

        ``causes`` gives each segment the event time of what touched it (default: ``now_us``, a timer's due time).
        """
        if not keys:
            return
        tz = self._tz(traits)
        memberships = state.setdefault("m", {})
        for key in self.order:
            if key not in keys:
                continue
            segment = self.segments[key]
            evaluator = Evaluator(traits, state, now_us)
            facets = evaluator.segment(segment)
            verdict = evaluator.last_verdict
            current: dict[str, Any] = memberships.get(key, {})
            apply_now = force or segment.refresh == "realtime" or key in fired
            if apply_now:
                cause_us = min(now_us, (causes or {}).get(key, now_us))
                self._apply(batch, segment, user_id, current, facets, now_us, reason_prefix + verdict.reason,
                            cause_us, origin)
                if facets:
                    memberships[key] = {e: [current.get(e, [now_us])[0], f["data"]] for e, f in facets.items()}
                else:
                    memberships.pop(key, None)
                if verdict.next_us is not None:
                    self._want_timer(batch, state, key, user_id,
                                     refresh_at_or_after(segment.refresh, verdict.next_us, tz), now_us)
            else:
                changed = set(facets) != set(current) or any(
                    current[e][1] != facets[e]["data"] for e in facets if e in current
                )
                if changed:  # applied at the next refresh instant, as found now (an import's changes stay its own)
                    self._want_timer(batch, state, key, user_id, refresh_at_or_after(segment.refresh, now_us, tz),
                                     now_us, origin)
                elif verdict.next_us is not None:  # a change that time alone brings later is live
                    self._want_timer(batch, state, key, user_id,
                                     refresh_at_or_after(segment.refresh, verdict.next_us, tz), now_us)

    def _apply(self, batch: _Batch, segment: Segment, user_id: str, current: dict[str, Any],
               facets: dict[str, dict[str, Any]], now_us: int, reason: str, cause_us: int, origin: Origin) -> None:
        key = segment.key
        pattern = segment.pattern
        found_by = "" if origin == "live" else f"{origin}: "  # a rebuild's or an import's transitions say so
        reason = found_by + reason
        for entity in current.keys() - facets.keys():
            batch.transitions.append(Transition(key, user_id, entity, "exit", now_us, reason, current[entity][1],
                                                cause_us, origin))
            batch.removed.append((key, user_id, entity))
        for entity, facet in facets.items():
            if entity not in current:
                event_us = cause_us
                opened = facet["data"].get("at_us")
                if pattern is not None and isinstance(opened, int):
                    # An open entity became a member when its deadline passed, whatever brought the news.
                    event_us = min(now_us, opened + pattern.within_us)
                entry = Transition(key, user_id, entity, "enter", now_us, found_by + facet["reason"], facet["data"],
                                   event_us, origin)
                if origin == "live" and not entry.starts_flows(self.entry_max_lag_us):
                    entry = replace(entry, reason=f"{entry.reason}; {late_note(entry.lag_us)}")
                batch.transitions.append(entry)
                batch.members.append(Membership(key, user_id, entity, now_us, facet["data"], facet["reason"]))
            elif current[entity][1] != facet["data"]:
                batch.members.append(
                    Membership(key, user_id, entity, current[entity][0], facet["data"], facet["reason"])
                )

    @staticmethod
    def _want_timer(batch: _Batch, state: State, key: str, user_id: str, due_us: int, now_us: int,
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

    def _flush(self, tx: Tx, batch: _Batch, states: dict[str, State], now_us: int) -> None:
        tx.segments.save_states(states, now_us)
        tx.timers.schedule_many(batch.timers, earliest=True)
        tx.segments.delete_members(batch.removed)
        tx.segments.upsert_members(batch.members)
        tx.segments.record_transitions(batch.transitions)
        if batch.transitions:
            for listener in self.listeners:
                listener.on_transitions(tx, batch.transitions)

    # Reading ------------------------------------------------------------------------------------------

    def user_segments(self, tx: Tx, user_id: str) -> list[str]:
        return sorted({m.segment for m in tx.segments.members_of_user(user_id) if m.segment in self.segments})


def late_note(lag_us: int) -> str:
    """Why a live entry starts no flow (in the transition's reason)."""
    minutes = lag_us // 60_000_000
    return f"found {minutes // 60} h {minutes % 60} min after its event time (more than flow_entry_max_lag): " \
        "starts no flow"


class _Batch:
    """What one pass decided, written together at the end."""

    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self.members: list[Membership] = []
        self.removed: list[tuple[str, str, str]] = []
        self.timers: list[tuple[str, str, int, dict[str, Any]]] = []

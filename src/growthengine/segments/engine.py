"""The incremental segment engine: events and timers in, exact memberships and transitions out.

Each event updates its user's compact state (``feeds.py``) and re-evaluates only the segments it can affect.
A durable timer per (segment, user) looks again when time alone could change the answer. Segments that refresh
hourly or daily apply their changes only at their refresh instants. Every enter and exit is stored with its
reason and handed to the transition listeners (the flow engine) in the same transaction.

State is kept in event time (``feeds.py``): a late event lands where it belongs. Every transition carries the event
time of its cause (the latest event that touched the segment, a pattern's deadline, or a timer's due time) and its
origin, so the flow engine starts flows only on fresh, live entries (``flow_entry_max_lag``).

The state of the users this process owns stays in memory between batches (``state_cache.py``: a bounded LRU, kept
honest by fences) and what a batch changes is written once, in its transaction. What an event can change is worked
out once per configuration: how each feed forgets (no walk of every rule per user), the segments each event name
can move (only those, and the segments that refer to them, are evaluated) and each rule compiled to closures
(``compiled.py``). The decision per user is ``decision.py``: compiled rules word no reason; a segment whose
membership changes is evaluated again by the evaluator with its reasons. The documents written are encoded again
only where they changed (``state_document.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from growthengine.clock import Clock, to_us
from growthengine.domain.events import Event
from growthengine.domain.partitions import partition_of
from growthengine.domain.profiles import Profile
from growthengine.pipeline.ownership import Ownership
from growthengine.scheduler.collector import collector_paused
from growthengine.segments.compiled import Decide, compile_segment
from growthengine.segments.decision import reconcile
from growthengine.segments.feeds import (
    FeedPlan,
    PruneSpec,
    State,
    apply_event,
    prune_activity,
    prune_feeds,
    prune_specs,
    read_back,
    walk,
)
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
from growthengine.segments.pattern_horizons import Horizons, prune_user_feeds
from growthengine.segments.pattern_reasons import Wording, pattern_wording
from growthengine.segments.segment_pass import (
    PassBatch,
    closures,
    timers_fired,
)
from growthengine.segments.state_cache import CACHE_USERS, OwnershipView, StateCache
from growthengine.segments.timer_group import InstantPass, TimerGroup
from growthengine.storage.segment_store import Origin, Transition
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

DEFAULT_ENTRY_MAX_LAG_US = 3_600_000_000
TOUCHING_KEPT = 4096
"""Event names and types whose segments are kept worked out (names come from the senders: bounded)."""


class TransitionListener(Protocol):
    """Hears every segment enter and exit, inside the transaction that made it (the flow engine is one)."""

    def on_transitions(self, tx: Tx, transitions: list[Transition]) -> None: ...


class SegmentEngine:
    def __init__(self, segments: dict[str, Segment], clock: Clock, business_timezone: str = "Asia/Bangkok",
                 transition_listeners: Iterable[TransitionListener] = (),
                 entry_max_lag_us: int = DEFAULT_ENTRY_MAX_LAG_US, cache_users: int = CACHE_USERS) -> None:
        self.clock = clock
        self.business_timezone = business_timezone
        self.entry_max_lag_us = entry_max_lag_us
        self.listeners: list[TransitionListener] = list(transition_listeners)
        self.cache = StateCache(cache_users)
        self.timer_group = TimerGroup(self._write_group, self.cache.forget)
        """Inside a scheduler's group of instants, the passes its timers make are written at the group's end."""
        self.configure(segments)

    def use_ownership(self, ownership: Ownership) -> None:
        """The partitions (and lease epochs) this process holds: the in-memory state follows them."""
        self.cache.ownership = OwnershipView(ownership)
        self.cache.forget(None)

    def forget_cached(self, user_ids: Iterable[str] | None) -> None:
        """Drop these users' state from memory (``None``: everyone's); it is read from the database next time.
        For anything that writes their segment state other than this engine's own work."""
        self.cache.forget(user_ids)

    def configure(self, segments: dict[str, Segment]) -> None:
        """Take a new (already validated) set of segments."""
        self.segments = dict(segments)
        self.order = dependency_order(self.segments)
        self.plan = FeedPlan.build(self.segments.values())
        self._prunes: dict[str, PruneSpec] = prune_specs(self.segments.values())
        self.decide: dict[str, Decide] = {key: compile_segment(seg) for key, seg in self.segments.items()}
        self.wordings: dict[str, Wording] = {key: word for key, seg in self.segments.items()
                                             if (word := pattern_wording(seg)) is not None}
        self.cache.forget(None)  # states read under the old rules may hold feeds no rule uses now
        self.cache.documents.replaced_feeds = self.plan.pattern_feeds
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
        self._touching: dict[tuple[str, str], frozenset[str]] = {}
        self._on_activity = on_activity
        self._on_traits = on_traits
        self._dependents = dict(dependents)
        # The segments whose evaluation reads the user's profile: a trait condition, or a refresh instant in the
        # user's time zone (a timer's look at the others reads no profile).
        self._need_profiles = frozenset(key for key, segment in self.segments.items() if segment.refresh != "realtime"
                                        or any(isinstance(n, TraitCondition) for n in walk(segment.condition)))

    # Which segments an event can change ---------------------------------------------------------------

    def _affected(self, events: Iterable[Event]) -> dict[str, int]:
        """The segments these events can change, each with the event time of the latest event that touches it (a
        segment that refers to another takes its sources' time)."""
        causes: dict[str, int] = {}
        touching = self._touching
        for event in events:
            keys = touching.get((event.name, event.type))
            if keys is None:
                keys = self._touched_by(event)
            ts = event.ts_us
            for key in keys:
                if causes.get(key, ts - 1) < ts:
                    causes[key] = ts
        for key in self.order:  # referenced segments come first: their time reaches every dependent in one pass
            if key in causes:
                for dependent in self._dependents.get(key, ()):
                    if causes.get(dependent, causes[key] - 1) < causes[key]:
                        causes[dependent] = causes[key]
        return causes

    def _touched_by(self, event: Event) -> frozenset[str]:
        """The segments an event of this name and type can change (kept per name and type, a bounded number)."""
        keys = frozenset(self._by_event.get(event.name, ()))
        if event.is_activity:
            keys |= self._on_activity
        if event.type == "identify":
            keys |= self._on_traits
        if len(self._touching) < TOUCHING_KEPT:
            self._touching[(event.name, event.type)] = keys
        return keys

    def _tz(self, traits: dict[str, Any]) -> str:
        tz = traits.get("timezone")
        return tz if isinstance(tz, str) and tz else self.business_timezone

    # Ingestion ----------------------------------------------------------------------------------------

    @contextmanager
    def _cached(self, tx: Tx, *, check: bool = True) -> Iterator[None]:
        """Work on the in-memory state: checked against its fences first (unless ``check`` is false: checked
        already in this transaction); dropped whole if the work fails.

        The cyclic garbage collector is held off meanwhile (``scheduler/collector.py``): a pass allocates a few
        objects per event, nearly all freed by reference counting, and the collector's passes that those
        allocations triggered walked every state held in memory."""
        if check:
            self.cache.check(tx)
        try:
            with collector_paused():
                yield
        except BaseException:
            self.cache.forget(None)
            raise

    def _load(self, tx: Tx, user_ids: list[str]) -> dict[str, State]:
        """The users' state, from memory or read (a state read drops the feeds no rule uses any more)."""
        return self.cache.load(tx, user_ids, lambda state: read_back(state, self.plan))

    def _owns(self, user_id: str) -> bool:
        ownership = self.cache.ownership.ownership
        return ownership is None or ownership.every_partition or partition_of(user_id) in ownership.partitions()

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        by_user: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            by_user[event.user_id].append(event)
        with self._cached(tx):
            states = self._load(tx, list(by_user))
            now_us = to_us(self.clock.now())
            batch = PassBatch()
            changed: dict[str, State] = {}
            plan = self.plan
            for user_id, user_events in by_user.items():
                profile = profiles.get(user_id)
                traits = profile.traits if profile else {}
                tz = self._tz(traits)
                state = states.get(user_id)
                if state is None:
                    state = {}
                    self.cache.hold(user_id, state)
                for event in user_events:
                    apply_event(state, event, plan, tz)
                # Every feed that forgets is pruned, by the specs found once (not a walk of every rule): what time
                # has made useless goes whichever event comes, as the stored state has always shown (a large
                # pattern feed is walked only when it can have something to forget: pattern_horizons.py).
                self._prune(user_id, state, now_us)
                prune_activity(state, plan)
                causes = self._affected(user_events)
                # History loaded by growth import builds state and memberships; its transitions start no flow.
                origin: Origin = "import" if all(e.origin == "import" for e in user_events) else "live"
                self._reconcile(batch, user_id, state, traits, now_us, set(causes), fired=set(), causes=causes,
                                origin=origin)
                changed[user_id] = state
            self._write(tx, batch, changed, now_us)

    def _prune(self, user_id: str, state: State, now_us: int) -> None:
        """Prune every feed of a state held in memory, with the user's kept pattern horizons."""
        held = self.cache.horizons
        kept = held.get(user_id)
        horizons: Horizons = kept if kept is not None else {}
        prune_user_feeds(state, self._prunes, now_us, horizons)
        if kept is None:
            if horizons:
                held[user_id] = horizons
        elif not horizons:
            del held[user_id]

    def on_merge_commands(self, tx: Tx, commands: list[Event]) -> None:
        """Per-user ``merge`` commands from the log: fold each user's history (up to the command) again."""
        for command in commands:
            anonymous = command.properties.get("anonymous")
            if isinstance(anonymous, str):
                self.on_merge(tx, anonymous, command.user_id, before_id=command.id)

    def on_merge(self, tx: Tx, anonymous_key: str, user_id: str, *, before_id: int | None = None) -> None:
        """The anonymous visitor's history now belongs to the user: fold the user's whole log again (the events
        stored before the merge; those after it follow as usual)."""
        with self._cached(tx):
            # The visitor may be another worker's: then its cache hears of it through the partition's fence.
            tx.segments.delete_state(anonymous_key, owned=self._owns(anonymous_key))
            self.cache.forget([anonymous_key])
            tx.segments.delete_user_members(anonymous_key)
            profile = tx.profiles.get(user_id)
            traits = profile.traits if profile else {}
            old = self._load(tx, [user_id]).get(user_id, {})
            state: State = {"m": old.get("m", {}), "t": old.get("t", {}), "ti": old.get("ti", {})}
            tz = self._tz(traits)
            for event in tx.events.for_user(user_id, before_id=before_id):
                apply_event(state, event, self.plan, tz)
            now_us = to_us(self.clock.now())
            prune_feeds(state, self._prunes, self._prunes, now_us)
            prune_activity(state, self.plan)
            batch = PassBatch()
            self._reconcile(batch, user_id, state, traits, now_us, set(self.segments), fired=set())
            self.cache.hold(user_id, state)
            self._write(tx, batch, {user_id: state}, now_us)

    def erased(self, tx: Tx, user_ids: list[str]) -> None:
        """These users' segment data was erased in ``tx``: forget them here, and tell the owners of any of them in
        partitions this process does not hold (an erased user's anonymous visitors)."""
        with self._cached(tx):
            self.cache.forget(user_ids)
            others = [u for u in user_ids if not self._owns(u)]
            if others:
                tx.segments.touch_fences(others)

    # Timers -------------------------------------------------------------------------------------------

    def on_timers(self, tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        """Time alone may have changed these users' memberships: look again, now that it is ``due``.

        Set-based: the users' states come from memory (the rest read 500 to a statement), their profiles are read
        only when a segment to look at needs traits or the user's time zone, and what changes is written in bulk
        with the batch (one statement per table). A segment a timer looks at is evaluated with its reasons at once
        (a timer is booked when time alone may change the answer, so it mostly does); the segments that refer to
        it are evaluated without reasons, and worded only when their membership changes."""
        now_us = to_us(due)
        wanted, live = timers_fired(timers, self.segments)
        if not wanted:
            return
        closure_of = closures(wanted, self._dependents)
        group = self.timer_group.current
        with self._cached(tx, check=group is None or not group.checked):
            if group is not None:
                group.checked = True
            states = self._load(tx, list(wanted))
            needs = self._need_profiles
            readers = [u for u, closure in closure_of.items() if u in states and not needs.isdisjoint(closure)]
            profiles = tx.profiles.get_many(readers) if readers else {}
            batch = PassBatch()
            changed: dict[str, State] = {}
            plan = self.plan
            for user_id, keys in wanted.items():
                state = states.get(user_id)
                if state is None:
                    continue
                pending = state.setdefault("t", {})
                imported = state.get("ti")
                for key in keys:
                    pending.pop(key, None)  # this timer has fired; the store no longer holds it
                    if imported:
                        imported.pop(key, None)
                if imported is not None and not imported:
                    state.pop("ti", None)
                profile = profiles.get(user_id)
                traits = profile.traits if profile else {}
                self._prune(user_id, state, now_us)
                prune_activity(state, plan)
                self._reconcile(batch, user_id, state, traits, now_us, closure_of[user_id], fired=keys,
                                origin="live" if user_id in live else "import", worded=keys)
                changed[user_id] = state
            if group is None:
                self._write(tx, batch, changed, now_us)
            else:
                # The listeners hear of the instant's transitions now (the flows defer the runs they start to
                # the group's end too: ``TimerBatch``); its rows are written with the group's others.
                self.timer_group.keep(InstantPass(batch, changed, now_us))
                self._tell(tx, batch.transitions)

    # The decision ---------------------------------------------------------------------------------------

    def _reconcile(self, batch: PassBatch, user_id: str, state: State, traits: dict[str, Any], now_us: int,
                   keys: set[str], *, fired: set[str], force: bool = False, reason_prefix: str = "",
                   causes: dict[str, int] | None = None, origin: Origin = "live",
                   worded: set[str] | frozenset[str] = frozenset()) -> None:
        """Evaluate ``keys`` for one user; apply now or schedule (``decision.py``)."""
        reconcile(self, batch, user_id, state, traits, now_us, keys, fired=fired, force=force,
                  reason_prefix=reason_prefix, causes=causes, origin=origin, worded=worded)

    def _flush(self, tx: Tx, batch: PassBatch, states: dict[str, State], now_us: int) -> None:
        """Write what a pass decided, with states that are not this engine's in-memory ones (a rebuild's): they
        replace whatever memory held of those users, here and in any other process that owns them."""
        self.cache.forget(states)
        tx.segments.save_states(states, now_us)
        self._effects(tx, batch)

    def _write(self, tx: Tx, batch: PassBatch, states: dict[str, State], now_us: int) -> None:
        """Write what a pass decided over the in-memory states (the changed ones, once)."""
        self.cache.save(tx, states, now_us)
        self._effects(tx, batch)

    def _effects(self, tx: Tx, batch: PassBatch) -> None:
        self._store(tx, batch)
        self._tell(tx, batch.transitions)

    def _store(self, tx: Tx, batch: PassBatch) -> None:
        tx.timers.schedule_many(batch.timers, earliest=True)
        tx.segments.write_changes(batch.removed, batch.members, batch.transitions)

    def _tell(self, tx: Tx, transitions: list[Transition]) -> None:
        if transitions:
            for listener in self.listeners:
                listener.on_transitions(tx, transitions)

    def _write_group(self, tx: Tx, states: dict[str, State], batch: PassBatch, now_us: int) -> None:
        """Write what a group of timer instants decided (``TimerGroup``; the listeners heard at each instant)."""
        with self._cached(tx, check=False):
            self.cache.save(tx, states, now_us)
            self._store(tx, batch)

    # Reading ------------------------------------------------------------------------------------------

    def user_segments(self, tx: Tx, user_id: str) -> list[str]:
        return sorted({m.segment for m in tx.segments.members_of_user(user_id) if m.segment in self.segments})



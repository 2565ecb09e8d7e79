"""Whether a user would enter a flow now, and as what run: the trigger and the exit rules read on the user's stored
data (segment memberships with their reasons, the user's recent events), the way the flow engine starts and ends
runs (:mod:`growthengine.flows.engine`, :mod:`growthengine.flows.triggers`). Reads only; the path preview
(:mod:`growthengine.flows.path_preview`) walks the steps from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from growthengine.clock import from_us
from growthengine.domain.events import Event
from growthengine.flows.engine import FlowEngine, _segment_candidate
from growthengine.flows.model import EventTrigger, Flow, Schedule, SegmentEntered
from growthengine.flows.triggers import derived, event_matches, exit_matches, exits_for, trigger_entity
from growthengine.segments.durations import format_duration_us
from growthengine.segments.feeds import matches
from growthengine.storage.run_store import Run
from growthengine.storage.unit_of_work import Tx
from growthengine.timefmt import format_instant

RECENT_US = 30 * 86_400_000_000
"""How far back the user's history is searched for an event that starts the flow."""


@dataclass
class Entry:
    """The run the user would start now (``enters``), or why not; the run's entity, trigger time and context are
    what the engine would give it, so the steps render and decide as they would."""

    enters: bool
    reason: str
    trigger: dict[str, Any]
    entity: str = ""
    trigger_us: int = 0
    starts_us: int = 0
    context: dict[str, Any] = field(default_factory=dict)
    exits: list[dict[str, Any]] = field(default_factory=list)

    def run(self, flow: Flow, user_id: str) -> Run:
        """The run as enrolment would create it (never stored)."""
        return Run(id=0, flow=flow.key, version=flow.version, user_id=user_id, entity=self.entity, status="active",
                   cursor="0", trigger_us=self.trigger_us, entered_us=self.starts_us, updated_us=self.starts_us,
                   context=dict(self.context))


def entry(tx: Tx, flows: FlowEngine, flow: Flow, user_id: str, now_us: int,
          trigger_values: dict[str, Any] | None = None) -> Entry:
    """Would ``user_id`` enter ``flow`` now? ``trigger_values``: the properties of a trigger event to assume now
    (for an event trigger), instead of the user's latest matching event."""
    trigger = flow.trigger
    if isinstance(trigger, SegmentEntered):
        found = _segment_entry(tx, trigger, user_id, now_us)
    elif isinstance(trigger, Schedule):
        found = _schedule_entry(tx, flows, trigger, user_id, now_us)
    else:
        found = _event_entry(tx, trigger, user_id, now_us, trigger_values)
    if not found.enters:
        return found
    pair = (user_id, found.entity)
    if pair in tx.runs.live_entities(flow.key, [pair]):
        found.enters = False
        found.reason = "already in this flow" + (f" for {found.entity}" if found.entity else "") + \
            " (one live run per user and entity)"
    elif flow.reentry == "never" and pair in tx.runs.ever_entered(flow.key, [user_id]):
        found.enters = False
        found.reason = "entered this flow before, and it is never re-entered"
    if isinstance(trigger, EventTrigger) and trigger.unless_event and trigger.unless_within_us:
        found.starts_us = max(found.starts_us, found.trigger_us + trigger.unless_within_us)
    found.exits = _exits(tx, flow, user_id, found, now_us)
    ended = next((e for e in found.exits if e["happened"]), None)
    if found.enters and ended is not None:
        found.enters = False
        found.reason = f"would end at once: {ended['reason']}"
    return found


def _segment_entry(tx: Tx, trigger: SegmentEntered, user_id: str, now_us: int) -> Entry:
    described: dict[str, Any] = {"type": "segment", "segment": trigger.segment}
    members = sorted((m for m in tx.segments.members_of_user(user_id) if m.segment == trigger.segment),
                     key=lambda m: -m.since_us)
    if not members:
        return Entry(False, f"not in segment {trigger.segment} now", described, trigger_us=now_us, starts_us=now_us)
    m = members[0]
    _, entity, trigger_us, context = _segment_candidate(trigger.segment, user_id, m.entity, m.data, m.since_us)
    described.update(memberSince=format_instant(from_us(m.since_us)), entity=entity or None,
                     memberships=len(members))
    return Entry(True, f"in segment {trigger.segment}: {m.reason}", described, entity=entity,
                 trigger_us=trigger_us, starts_us=now_us, context=context)


def _schedule_entry(tx: Tx, flows: FlowEngine, trigger: Schedule, user_id: str, now_us: int) -> Entry:
    at_us = flows._next_broadcast(trigger, now_us)
    described: dict[str, Any] = {"type": "schedule", "segment": trigger.segment, "next": format_instant(from_us(at_us))}
    context: dict[str, Any] = {"trigger": {}, "schedule": True}
    if trigger.segment is None:
        return Entry(True, "everyone gets the scheduled broadcast", described, trigger_us=at_us, starts_us=at_us,
                     context=context)
    member = next((m for m in tx.segments.members_of_user(user_id) if m.segment == trigger.segment), None)
    if member is None:
        return Entry(False, f"not in segment {trigger.segment} now", described, trigger_us=at_us, starts_us=at_us,
                     context=context)
    return Entry(True, f"in segment {trigger.segment}: {member.reason}", described, trigger_us=at_us,
                 starts_us=at_us, context=context)


def _event_entry(tx: Tx, trigger: EventTrigger, user_id: str, now_us: int,
                 given: dict[str, Any] | None) -> Entry:
    described: dict[str, Any] = {"type": "event", "event": trigger.event}
    if trigger.unless_event:
        described["unless"] = {"event": trigger.unless_event,
                               "within": format_duration_us(trigger.unless_within_us or 0)}
    events = tx.events.for_user(user_id, since_us=now_us - RECENT_US if trigger.audience is None else None)
    events = [e for e in events if e.ts_us <= now_us]
    if trigger.audience == "favorited":
        return _audience_entry(tx, trigger, events, now_us, given, described)
    if given is not None:
        values = derived(trigger, given)
        ok = values is not None and matches(values, trigger.where)
        described["assumed"] = True
        if values is None or not ok:
            return Entry(False, f"the {trigger.event} given does not start the flow (its conditions fail)",
                         described, trigger_us=now_us, starts_us=now_us)
        return _started(tx, trigger, values, now_us, now_us, f"{trigger.event} now (as given)", described)
    latest: tuple[Event, dict[str, Any]] | None = None
    for event in events:
        values = event_matches(trigger, event)
        if values is not None and (latest is None or event.ts_us >= latest[0].ts_us):
            latest = (event, values)
    if latest is None:
        return Entry(False, f"starts on {trigger.event}: none that matches in the user's last "
                            f"{format_duration_us(RECENT_US)}; the path is as if one came now", described,
                     trigger_us=now_us, starts_us=now_us, context={"trigger": {}, "event": trigger.event})
    event, values = latest
    described["found"] = format_instant(from_us(event.ts_us))
    return _started(tx, trigger, values, event.ts_us, now_us,
                    f"{trigger.event} at {format_instant(from_us(event.ts_us))}", described)


def _started(tx: Tx, trigger: EventTrigger, values: dict[str, Any], trigger_us: int, now_us: int, reason: str,
             described: dict[str, Any]) -> Entry:
    entity = trigger_entity(trigger, values)
    listing = tx.listings.get(entity) if entity and "\x00" not in entity else None
    context = {"trigger": {**(listing or {}), **values}, "event": trigger.event}
    if entity:
        described["entity"] = entity
    return Entry(True, reason, described, entity=entity, trigger_us=trigger_us, starts_us=now_us, context=context)


def _audience_entry(tx: Tx, trigger: EventTrigger, events: list[Event], now_us: int, given: dict[str, Any] | None,
                    described: dict[str, Any]) -> Entry:
    """Someone else's event (a seller's price change) starts runs for everyone who favorites its listing."""
    favorites: dict[str, int] = {}
    for event in events:
        listing = event.properties.get("listing_id")
        if event.name == "favorite_added" and listing is not None:
            favorites[str(listing)] = event.ts_us
        elif event.name == "favorite_removed" and listing is not None:
            favorites.pop(str(listing), None)
    described["favorites"] = sorted(favorites)
    about = f"starts for everyone who {trigger.audience} the {trigger.per} of a {trigger.event}"
    values: dict[str, Any] | None = dict(given or {})
    if given is not None:
        values = derived(trigger, given)
        if values is None or not matches(values, trigger.where):
            return Entry(False, f"{about}: the {trigger.event} given does not start the flow", described,
                         trigger_us=now_us, starts_us=now_us)
    entity = trigger_entity(trigger, values or {}) if values else ""
    if not entity and favorites:
        entity = max(favorites, key=lambda k: favorites[k])
    listing = tx.listings.get(entity) if entity and "\x00" not in entity else None
    context = {"trigger": {**(listing or {}), **(values or {}), **({"listing_id": entity} if entity else {})},
               "event": trigger.event}
    if not favorites or (entity and entity not in favorites):
        return Entry(False, f"{about}: the user favorites no such listing", described, entity=entity,
                     trigger_us=now_us, starts_us=now_us, context=context)
    described["entity"] = entity
    return Entry(given is not None, f"{about}: the user favorites {entity}" + (
        "" if given is not None else f"; give the {trigger.event}'s properties to see it start"), described,
        entity=entity, trigger_us=now_us, starts_us=now_us, context=context)


def _exits(tx: Tx, flow: Flow, user_id: str, found: Entry, now_us: int) -> list[dict[str, Any]]:
    """Each exit rule, and whether an event since the trigger (up to now) already ends the run."""
    rules = exits_for(flow)
    if not rules:
        return []
    run = found.run(flow, user_id)
    since = [e for e in tx.events.for_user(user_id, since_us=found.trigger_us) if e.ts_us <= now_us]
    out = []
    seen: set[str] = set()
    for rule in rules:
        if repr(rule) in seen:  # the trigger's "unless" event may also be an exit rule
            continue
        seen.add(repr(rule))
        hit = next((e for e in since if exit_matches(rule, e, run)), None)
        where = {prop: {op: value} for prop, op, value in rule.where}
        out.append({"event": rule.event, "where": where, "happened": hit is not None,
                    "reason": f"{rule.event} at {format_instant(from_us(hit.ts_us))}" if hit is not None
                    else f"no {rule.event} since the trigger: the run goes on until one comes"})
    return out

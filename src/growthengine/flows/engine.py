"""The flow engine: enrolls runs from segment entries, events and schedules; moves them on timers; ends them
on exit events. Runs, timers and messages are stored, so a restart loses nothing and repeats nothing."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from growthengine.clock import Clock, to_us
from growthengine.domain.events import Event
from growthengine.domain.messages import Message
from growthengine.domain.profiles import Profile
from growthengine.flows.dispatch import Dispatcher, Outgoing
from growthengine.flows.enrol_pages import ENROLL_COMMAND as ENROLL_COMMAND  # (bootstrap wires it)
from growthengine.flows.enrol_pages import applied_payload, enrol_pages, named_users
from growthengine.flows.enrolment import EnrolCandidate, Enrolment
from growthengine.flows.fanout import announce
from growthengine.flows.feedback import Feedback, apply_feedback
from growthengine.flows.model import EventTrigger, Flow, Schedule, SegmentEntered
from growthengine.flows.runner import RUN_TIMER, Runner
from growthengine.flows.triggers import event_matches, exit_matches, exits_for, trigger_entity
from growthengine.scheduler.collector import collector_paused
from growthengine.storage.run_store import Run
from growthengine.storage.segment_store import Transition
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

BROADCAST_TIMER = "broadcast"
FEEDBACK = {"message_opened": "opened", "message_clicked": "clicked"}

# Loads an older version of a flow from its stored definition (runs in flight keep their version).
VersionLoader = Callable[[str, dict[str, Any]], Flow | None]


class FlowEngine:
    def __init__(self, flows: dict[str, Flow], runner: Runner, clock: Clock, load_version: VersionLoader,
                 entry_max_lag_us: int = 3_600_000_000) -> None:
        self.runner = runner
        self.clock = clock
        self.entry_max_lag_us = entry_max_lag_us
        self._load_version = load_version
        self._versions: dict[tuple[str, str], Flow | None] = {}
        self.enrolment = Enrolment(runner)  # also the scheduler's TimerBatch: runs started once per timer group
        self.configure(flows)

    def configure(self, flows: dict[str, Flow]) -> None:
        self.flows = {k: f for k, f in flows.items() if f.enabled}
        self._by_segment: dict[str, list[Flow]] = defaultdict(list)
        self._by_event: dict[str, list[Flow]] = defaultdict(list)
        for flow in self.flows.values():
            if isinstance(flow.trigger, SegmentEntered):
                self._by_segment[flow.trigger.segment].append(flow)
            elif isinstance(flow.trigger, EventTrigger):
                self._by_event[flow.trigger.event].append(flow)

    @property
    def dispatcher(self) -> Dispatcher:
        return self.runner.dispatcher

    def start(self, tx: Tx) -> None:
        """Record the current versions and book the next broadcast of every scheduled flow. A flow published for the
        first time with ``enroll_existing`` enrols the members already in its segment (once: a published flow is
        remembered by its recorded versions, so a restart or an edit enrols nobody again)."""
        now_us = to_us(self.clock.now())
        published = tx.runs.published(list(self.flows))
        for flow in self.flows.values():
            if flow.enroll_existing and flow.key not in published:
                self._enroll_existing(tx, flow, now_us)
            tx.runs.save_version(flow.key, flow.version, flow.source, now_us)
            if isinstance(flow.trigger, Schedule):
                key = f"broadcast:{flow.key}"
                if tx.timers.get(key) is None:
                    tx.timers.schedule(BROADCAST_TIMER, key, self._next_broadcast(flow.trigger, now_us),
                                       {"f": flow.key})

    def flow_for(self, run_flow: str, version: str) -> Flow | None:
        current = self.flows.get(run_flow)
        if current is not None and current.version == version:
            return current
        key = (run_flow, version)
        if key not in self._versions:
            self._versions[key] = None
        return self._versions[key]

    def _flow_of(self, tx: Tx, run_flow: str, version: str) -> Flow | None:
        flow = self.flow_for(run_flow, version)
        if flow is None:
            definition = tx.runs.version(run_flow, version)
            if definition is not None:
                flow = self._load_version(run_flow, definition)
                self._versions[(run_flow, version)] = flow
        return flow

    # Enrollment -----------------------------------------------------------------------------------------

    def enroll(self, tx: Tx, flow: Flow, candidates: list[EnrolCandidate], now_us: int,
               profiles: dict[str, Profile] | None = None) -> int:
        """Start runs for (user, entity, trigger time, context); at most one live run per flow, user, entity."""
        return self.enroll_many(tx, [(flow, c, now_us) for c in candidates], profiles)

    def enroll_many(self, tx: Tx, items: Sequence[tuple[Flow, EnrolCandidate, int]],
                    profiles: dict[str, Profile] | None = None) -> int:
        """Start the runs of many flows at once, each candidate as of its own instant (see :mod:`.enrolment`)."""
        return self.enrolment.enroll_many(tx, items, profiles)

    # Listeners ------------------------------------------------------------------------------------------

    def on_transitions(self, tx: Tx, transitions: list[Transition]) -> None:
        now_us = to_us(self.clock.now())
        by_segment: dict[str, list[Transition]] = defaultdict(list)
        held = 0
        for t in transitions:
            if t.kind == "enter" and t.segment in self._by_segment:
                if t.starts_flows(self.entry_max_lag_us):
                    by_segment[t.segment].append(t)
                else:
                    held += 1
        if held:
            log.info("%d segment entr%s recorded without starting flows (found by a rebuild or an import, or more "
                     "than flow_entry_max_lag after their event time)", held, "y" if held == 1 else "ies")
        items = [(flow, _segment_candidate(segment, t.user_id, t.entity, t.data, t.at_us), now_us)
                 for segment, entered in by_segment.items() for flow in self._by_segment[segment] for t in entered]
        self.enrolment.enroll_or_defer(tx, items)

    def _enroll_existing(self, tx: Tx, flow: Flow, now_us: int) -> None:
        """Ask each member's owner to start a run: one ``flow_enroll`` command per membership, in pages."""
        trigger = flow.trigger
        assert isinstance(trigger, SegmentEntered)
        after: tuple[str, str] | None = None
        reached = 0
        while True:
            page = tx.segments.memberships_page(trigger.segment, after=after, limit=2000)
            if not page:
                break
            commands = []
            for m in page:
                user_id, entity, trigger_us, context = _segment_candidate(trigger.segment, m.user_id, m.entity,
                                                                          m.data, m.since_us)
                payload = {"flow": flow.key, "entity": entity, "trigger_us": trigger_us, "context": context}
                commands.append((user_id, ENROLL_COMMAND, trigger_us, payload))
            tx.log.append_commands(commands, now_us)
            reached += len(page)
            after = (page[-1].user_id, page[-1].entity)
        log.info("%s published with enroll_existing: %d member(s) of %s to enrol", flow.key, reached, trigger.segment)

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        now_us = to_us(self.clock.now())
        ordered = sorted(events, key=lambda e: e.ts_us)
        self._marketplace_facts(tx, ordered)
        self._feedback(tx, ordered, now_us)
        self._exits(tx, ordered, now_us)
        # Event triggers, for the whole batch at once: the listings they are about read in one query, the runs
        # started by one enrolment (in event order: the first event of a flow, user and entity starts the run).
        matched: list[tuple[Flow, Event, dict[str, Any], str]] = []
        for event in ordered:
            if event.origin == "import":
                continue  # history (growth import without --start-flows) ends runs but starts none
            for flow in self._by_event.get(event.name, ()):
                trigger = flow.trigger
                assert isinstance(trigger, EventTrigger)
                values = event_matches(trigger, event)
                if values is not None:
                    matched.append((flow, event, values, trigger_entity(trigger, values)))
        if not matched:
            return
        listings = tx.listings.get_many(sorted({entity for *_, entity in matched if entity}))
        items: list[tuple[Flow, EnrolCandidate, int]] = []
        for flow, event, values, entity in matched:
            context = {"trigger": {**(listings.get(entity) or {}), **values}, "event": event.name}
            if isinstance(flow.trigger, EventTrigger) and flow.trigger.audience == "favorited":
                announce(tx, flow, event, entity, context, now_us)  # each partition's owner finds its favoriters
            else:
                items.append((flow, (event.user_id, entity, event.ts_us, context), now_us))
        self.enroll_many(tx, items, profiles)

    def on_enroll_commands(self, tx: Tx, commands: list[Event]) -> None:
        """Apply ``flow_enroll`` commands: runs for the users they name, grouped by flow (with the cyclic collector
        held off, see :meth:`Enrolment.enroll_many`)."""
        with collector_paused():
            self._enroll_commands(tx, commands)

    def _enroll_commands(self, tx: Tx, commands: list[Event]) -> None:
        now_us = to_us(self.clock.now())
        by_flow: dict[str, list[tuple[str, str, int, dict[str, Any]]]] = defaultdict(list)
        users: dict[str, None] = {}
        for command in commands:
            p = command.properties
            entity, trigger_us = str(p.get("entity", "")), int(p.get("trigger_us", command.ts_us))
            context = p.get("context") or {}
            named = named_users(command)
            users.update(dict.fromkeys(named))
            by_flow[str(p.get("flow"))].extend((u, entity, trigger_us, dict(context)) for u in named)
        # A user erased since the fan-out was written has no profile: nothing starts for them.
        profiles = tx.profiles.get_many(list(users))
        for key, candidates in by_flow.items():
            flow = self.flows.get(key)
            if flow is None:
                log.info("%d enrolment(s) in %s dropped: the flow is no longer live", len(candidates), key)
                continue
            self.enroll(tx, flow, [c for c in candidates if c[0] in profiles], now_us, profiles)
        # Applied pages keep no user's id (``enrol_pages``: an erased user's id must leave the log).
        tx.log.rewrite_commands([(c.user_id, c.id, applied) for c in commands
                                 if c.id is not None and (applied := applied_payload(c)) is not None])

    @staticmethod
    def command_enrollments(tx: Tx, flow: Flow, users: list[str], entity: str, trigger_us: int,
                            context: dict[str, Any], now_us: int) -> None:
        """Ask each user's owner to start a run (fan-outs never write other users' state themselves): a command per
        partition and page of users (``enrol_pages``)."""
        payload = {"flow": flow.key, "entity": entity, "trigger_us": trigger_us, "context": context}
        tx.log.append_commands(enrol_pages(users, trigger_us, payload), now_us)

    def _marketplace_facts(self, tx: Tx, events: list[Event]) -> None:
        """Favorites and listings as the batch's events leave them, written in a few statements (the same rows as
        applying the events one by one: a favorite removed and added again is stored with its new time)."""
        added: dict[tuple[str, str], int] = {}  # (listing, user) -> time of the favorite the batch leaves
        removed: set[tuple[str, str]] = set()
        listings: list[tuple[str, int, dict[str, Any]]] = []
        for event in events:
            props = event.properties
            listing = props.get("listing_id")
            if listing is None:
                continue
            listing = str(listing)
            if event.name == "favorite_added":
                added.setdefault((listing, event.user_id), event.ts_us)
            elif event.name == "favorite_removed":
                removed.add((listing, event.user_id))
                added.pop((listing, event.user_id), None)
            elif event.name == "listing_created":
                listings.append((listing, event.ts_us, {
                    "seller_id": event.user_id, "title": props.get("title"), "price": _number(props.get("price")),
                    "category": props.get("category"), "image_url": props.get("image_url")}))
            elif event.name == "listing_price_changed":
                listings.append((listing, event.ts_us, {"price": _number(props.get("new_price"))}))
        tx.listings.remove_favorites(sorted(removed))
        tx.listings.add_favorites([(listing, user, at) for (listing, user), at in added.items()])
        tx.listings.upsert_listings(listings)

    def _feedback(self, tx: Tx, events: list[Event], now_us: int) -> None:
        """The app's own ``message_opened`` / ``message_clicked`` events, applied as feedback on their messages."""
        items = []
        for event in events:
            status = FEEDBACK.get(event.name)
            mid = event.properties.get("message_id")
            if status is not None and isinstance(mid, str):
                items.append((event.user_id, Feedback(mid, status, event.ts_us)))
        if items:
            apply_feedback(tx, items, now_us)

    def on_feedback_commands(self, tx: Tx, commands: list[Event]) -> None:
        """Apply ``message_feedback`` commands (webhooks, inbox reads) to the users' messages."""
        apply_feedback(tx, [(c.user_id, Feedback.of_command(c)) for c in commands], to_us(self.clock.now()))

    def _exits(self, tx: Tx, events: list[Event], now_us: int) -> None:
        users = list({e.user_id for e in events})
        runs = tx.runs.active_for_users(users)
        if not runs:
            return
        by_user: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            by_user[event.user_id].append(event)
        for run in runs:
            flow = self._flow_of(tx, run.flow, run.version)
            if flow is None:
                continue
            for event in by_user.get(run.user_id, ()):
                if event.ts_us < run.trigger_us:
                    continue
                rule = next((r for r in exits_for(flow) if exit_matches(r, event, run)), None)
                if rule is not None:
                    self.end_run(tx, run, f"exit on {event.name}", now_us)
                    break

    def end_run(self, tx: Tx, run: Any, reason: str, now_us: int) -> None:
        self.runner.finish(run, "exited", reason, now_us)
        tx.runs.save(run)
        tx.timers.cancel(f"run:{run.id}")
        for message in tx.messages.for_run(run.id, ["scheduled"]):
            tx.messages.update(message.id, status="cancelled", reason="flow_exit", updated_us=now_us)
            tx.timers.cancel(f"msg:{message.id}")

    # Timers ---------------------------------------------------------------------------------------------

    def on_run_timers(self, tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        now_us = to_us(due)
        ids = [int(t.payload["r"]) for t in timers if "r" in t.payload]
        runs = tx.runs.get_many(ids)
        profiles = tx.profiles.get_many([r.user_id for r in runs.values()])
        out = Outgoing()
        moved = []
        advancing: list[tuple[Run, Flow, dict[str, Any]]] = []
        for run in runs.values():
            if run.status != "active":
                continue
            flow = self._flow_of(tx, run.flow, run.version)
            if flow is None:
                self.runner.finish(run, "exited", "flow version no longer known", now_us)
            else:
                profile = profiles.get(run.user_id)
                advancing.append((run, flow, profile.traits if profile else {}))
            moved.append(run)
        self.runner.advance_many(tx, advancing, now_us, out)
        self.runner.flush(tx, out, now_us)
        tx.runs.save_many(moved)

    def on_message_timers(self, tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        """Held messages (quiet hours) come due: decide again, and send."""
        now_us = to_us(due)
        found = tx.messages.get_many([str(t.payload["m"]) for t in timers if "m" in t.payload])
        profiles = tx.profiles.get_many([m.user_id for m in found.values()])
        held: list[tuple[Message, dict[str, Any], float]] = []
        for timer in timers:
            message = found.get(str(timer.payload.get("m")))
            if message is None or message.status != "scheduled":
                continue
            profile = profiles.get(message.user_id)
            held.append((message, profile.traits if profile else {}, float(timer.payload.get("h", 0.0))))
        self.dispatcher.release_many(tx, held, now_us)

    def on_broadcast_timers(self, tx: Tx, timers: list[Timer], due: dt.datetime) -> None:
        now_us = to_us(due)
        for timer in timers:
            flow = self.flows.get(str(timer.payload.get("f")))
            if flow is None or not isinstance(flow.trigger, Schedule):
                continue
            occurrence = due.astimezone(dt.UTC).date().isoformat()
            if flow.trigger.segment is not None:
                users: list[str] = []
                after: str | None = None
                while True:
                    page = tx.segments.members_page(flow.trigger.segment, after=after, limit=5000)
                    if not page:
                        break
                    users += page
                    after = page[-1]
            else:
                users = [p.user_id for p in tx.profiles.page(after=None, limit=1_000_000) if not p.anonymous]
            for start in range(0, len(users), 2000):
                chunk = users[start:start + 2000]
                self.command_enrollments(tx, flow, chunk, occurrence, now_us, {"trigger": {}}, now_us)
            tx.timers.schedule(BROADCAST_TIMER, f"broadcast:{flow.key}",
                               self._next_broadcast(flow.trigger, now_us + 1), {"f": flow.key})
            log.info("broadcast %s reached %d users", flow.key, len(users))

    def _next_broadcast(self, schedule: Schedule, after_us: int) -> int:
        from growthengine.clock import from_us
        from growthengine.segments.feeds import zone_for

        local = from_us(after_us).astimezone(zone_for(self.runner.business_timezone))
        days = (schedule.weekday - local.weekday()) % 7
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=days),
                                        dt.time(schedule.hour, schedule.minute), tzinfo=local.tzinfo)
        if candidate < local:
            candidate += dt.timedelta(days=7)
        return to_us(candidate)


def _segment_candidate(segment: str, user_id: str, entity: str, data: dict[str, Any], at_us: int,
                       ) -> tuple[str, str, int, dict[str, Any]]:
    """A run candidate from a segment membership: the trigger time is a pattern's opening event, else the entry."""
    trigger = dict(data.get("properties") or {})
    trigger.update({k: v for k, v in data.items() if k not in ("properties", "at_us")})
    return (user_id, entity, int(data.get("at_us", at_us)), {"trigger": trigger, "segment": segment})


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


__all__ = ["BROADCAST_TIMER", "RUN_TIMER", "FlowEngine"]

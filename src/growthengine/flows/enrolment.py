"""Starting runs: many flows' candidates at once, each as of its own instant, and, inside a group of timer instants
(:class:`growthengine.scheduler.runner.TimerBatch`), deferred to the group's end so that segment entries found at
instants milliseconds apart start their runs in one batch: one live-run check per flow, one insert, one pass over
the first steps, one flush of their messages."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from growthengine.clock import from_us
from growthengine.domain.profiles import Profile
from growthengine.flows.dispatch import Outgoing
from growthengine.flows.model import EventTrigger, Flow
from growthengine.flows.runner import Runner
from growthengine.scheduler.collector import collector_paused
from growthengine.storage.run_store import Run
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

EnrolCandidate = tuple[str, str, int, dict[str, Any]]
"""A run to start: user, entity, trigger time, context."""


class Enrolment:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._group = threading.local()  # the enrolments deferred by this thread's timer group

    def enroll_many(self, tx: Tx, items: Sequence[tuple[Flow, EnrolCandidate, int]],
                    profiles: dict[str, Profile] | None = None) -> int:
        """Start the runs of many flows at once, each candidate as of its own instant: a few statements per flow
        (the live-run check), then one pass over their first steps, one flush of their messages and one insert of
        the runs as that pass left them, for the whole batch. The first candidate of a flow, user and entity wins.

        Python's cyclic collector is held off meanwhile (as for a timer group, ``scheduler.collector``): a batch
        allocates a few objects per run, freed by reference counting, and the collector's passes it set off walked
        the whole heap (a third of a 20,000-user price drop's CPU time)."""
        if not items:
            return 0
        with collector_paused():
            return self._enroll_many(tx, items, profiles)

    def _enroll_many(self, tx: Tx, items: Sequence[tuple[Flow, EnrolCandidate, int]],
                     profiles: dict[str, Profile] | None) -> int:
        by_flow: dict[str, list[tuple[EnrolCandidate, int]]] = defaultdict(list)
        flows: dict[str, Flow] = {}
        for flow, candidate, at_us in items:
            by_flow[flow.key].append((candidate, at_us))
            flows.setdefault(flow.key, flow)
        rows: list[tuple[str, str, str, str, int, int, dict[str, Any]]] = []
        for key, group in by_flow.items():
            flow = flows[key]
            unique: dict[tuple[str, str], tuple[EnrolCandidate, int]] = {}
            for candidate, at_us in group:
                unique.setdefault((candidate[0], candidate[1]), (candidate, at_us))
            pairs = list(unique)
            blocked = tx.runs.live_entities(flow.key, pairs)
            if flow.reentry == "never":
                blocked |= tx.runs.ever_entered(flow.key, [u for u, _ in pairs])
            trigger = flow.trigger
            for pair, ((user_id, entity, trigger_us, context), at_us) in unique.items():
                if pair in blocked:
                    continue
                ctx = dict(context)
                if isinstance(trigger, EventTrigger) and trigger.unless_within_us:
                    ctx["start_after_us"] = trigger_us + trigger.unless_within_us
                rows.append((flow.key, flow.version, user_id, entity, trigger_us, at_us, ctx))
        if not rows:
            return 0
        # The runs are written once, after their first pass (their ids taken first: the messages carry them).
        ids = tx.runs.reserve_ids(len(rows))
        runs = [Run(id=run_id, flow=key, version=version, user_id=user_id, entity=entity, status="active", cursor="0",
                    trigger_us=trigger_us, entered_us=at_us, updated_us=at_us, context=ctx)
                for run_id, (key, version, user_id, entity, trigger_us, at_us, ctx) in zip(ids, rows, strict=True)]
        known = profiles or {}
        missing = list({r.user_id for r in runs if r.user_id not in known})
        if missing:
            known = {**known, **tx.profiles.get_many(missing)}
        out = Outgoing()
        self.runner.advance_each(tx, [(run, flows[run.flow], known[run.user_id].traits if run.user_id in known
                                       else {}, run.entered_us) for run in runs], out)
        self.runner.flush(tx, out, max(run.entered_us for run in runs))
        tx.runs.insert_many(runs)
        return len(runs)

    # Enrolments deferred to the end of a group of timer instants (scheduler.TimerBatch) ----------------

    def enroll_or_defer(self, tx: Tx, items: list[tuple[Flow, EnrolCandidate, int]]) -> None:
        """Start the runs now, or, inside a timer group of this thread, with the group's others at its end."""
        deferred = self._deferred
        if deferred is not None:
            deferred.extend(items)
        else:
            self.enroll_many(tx, items)

    @property
    def _deferred(self) -> list[tuple[Flow, EnrolCandidate, int]] | None:
        deferred: list[tuple[Flow, EnrolCandidate, int]] | None = getattr(self._group, "deferred", None)
        return deferred

    def open_batch(self) -> None:
        self._group.deferred = []

    def batch_mark(self) -> int:
        deferred = self._deferred
        return len(deferred) if deferred is not None else 0

    def batch_rollback(self, mark: int) -> None:
        deferred = self._deferred
        if deferred is not None:
            del deferred[mark:]

    def before_fire(self, tx: Tx, timers: Sequence[Timer]) -> None:
        """Nothing deferred here is read by a timer's handler."""

    def after_fire(self, tx: Tx) -> None:
        """Nothing deferred here books a timer."""

    def close_batch(self, tx: Tx) -> None:
        """Start the runs that segment entries of the group's instants asked for, each as of its instant."""
        items, self._group.deferred = self._deferred, None
        if not items:
            return
        savepoint = tx.conn.begin_nested()
        try:
            self.enroll_many(tx, items)
            savepoint.commit()
            return
        except Exception:
            savepoint.rollback()
            log.exception("%d enrolment(s) of a timer group failed together; trying each instant alone", len(items))
        by_instant: dict[int, list[tuple[Flow, EnrolCandidate, int]]] = defaultdict(list)
        for item in items:
            by_instant[item[2]].append(item)
        for at_us, group in sorted(by_instant.items()):
            savepoint = tx.conn.begin_nested()
            try:
                self.enroll_many(tx, group)
                savepoint.commit()
            except Exception:
                savepoint.rollback()
                log.exception("%d enrolment(s) at %s dropped", len(group), from_us(at_us).isoformat())


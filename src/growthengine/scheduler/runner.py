"""Runs stored timers when they fall due, on the real clock or while a manual clock is advanced.

Timers due milliseconds apart (100,000 carts whose hour runs out over one minute) are fired instant after instant
inside one transaction: each instant's handlers run as of that instant (the manual clock set to it), and the work
they hand to a :class:`TimerBatch` (the segment stage's writes, the flow runs that segment entries start) is done
once for the whole group, each item as of its own instant. A group ends after a chunk of timers (``CLAIM_BATCH``,
5,000 by default), ``GROUP_SPAN_US`` of business time, or as soon as a handler appends to the event log (the stages
must see it at that instant); then it commits and the ``after_commit`` hooks run once for the group, not once per
instant.

Timers due at one instant are claimed a chunk at a time by one statement (on PostgreSQL only the partitions this
worker owns, rows locked and skipped by the others) and handed to their kind's handler together, which works on
them as a set (the segment stage: ``SegmentEngine.on_timers``). A group runs with Python's cyclic garbage collector
held off (``collector.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

from growthengine.clock import Clock, ManualClock, from_us, to_us
from growthengine.pipeline.ownership import Ownership, SoleOwner
from growthengine.scheduler.collector import collector_paused
from growthengine.storage.driver_cursor import DriverSavepoint
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Store, Tx

log = logging.getLogger(__name__)

# A handler gets the open transaction, the timers of its kind that fell due together, and the due instant.
TimerHandler = Callable[[Tx, list[Timer], dt.datetime], None]

MAX_ATTEMPTS = 8
CLAIM_BATCH = 5_000
"""Timers claimed by one statement and fired in one transaction at most (the default chunk; ``GROWTH_TIMER_CHUNK``
sets it): each chunk commits with its effects, so a crash neither loses nor repeats a timer's work."""
GROUP_SPAN_US = 1_000_000
"""The most business time one group of instants spans (a timer-started run's side effects that read the clock,
not its instant, such as a coupon's expiry, are at most this late)."""


class TimerBatch(Protocol):
    """Work that timer handlers defer to the end of a group of instants, done there in one batch."""

    def open_batch(self) -> None:
        """Start deferring."""

    def batch_mark(self) -> int:
        """How much is deferred so far (a handler that fails is rolled back to its mark)."""

    def batch_rollback(self, mark: int) -> None:
        """Forget what was deferred after ``mark``."""

    def before_fire(self, tx: Tx, timers: Sequence[Timer]) -> None:
        """These timers fire next (outside their savepoint): do now whatever deferred work they would read."""

    def after_fire(self, tx: Tx) -> None:
        """An instant's handlers have run (outside its savepoint), before the next instant is claimed."""

    def close_batch(self, tx: Tx) -> None:
        """Do what was deferred, in ``tx``, and stop deferring."""


class UnknownTimerKind(LookupError):
    pass


class Scheduler:
    """Fires timers. Handlers register by kind; a timer fires once, with its effects, in one transaction."""

    def __init__(self, store: Store, clock: Clock, ownership: Ownership | None = None, *,
                 chunk: int = CLAIM_BATCH) -> None:
        self._store = store
        self.chunk = chunk
        self._clock = clock
        self.ownership: Ownership = ownership or SoleOwner()
        self._handlers: dict[str, TimerHandler] = {}
        self.after_commit: list[Callable[[], object]] = []  # run after each committed batch (deliveries)
        self.batches: list[TimerBatch] = []  # work done once per group of instants, in this order
        self._group_kind: str | None = None

    def register(self, kind: str, handler: TimerHandler) -> None:
        self._handlers[kind] = handler

    def run_due(self) -> int:
        """Fire every timer due by now (real clock) in the partitions this process owns. Returns how many fired."""
        fired = 0
        while True:
            now_us = to_us(self._clock.now())
            owned = self.ownership.partitions()
            if not owned:
                return fired
            partitions = None if self.ownership.every_partition else owned
            with collector_paused(), self._store.transaction() as tx:
                self.ownership.check(tx)
                due = tx.timers.claim_due(now_us, limit=self.chunk, partitions=partitions)
                if not due:
                    return fired
                self._open()
                try:
                    fired += self._fire(tx, due)
                except BaseException:
                    self._abandon(tx)
                    raise
                self._close(tx)
            for hook in self.after_commit:
                hook()

    def advance(self, to: dt.datetime) -> int:
        """Move a manual clock to ``to``, firing each timer on the way with the clock at its due time."""
        clock = self._clock
        if not isinstance(clock, ManualClock):
            raise TypeError("only a manual clock can be advanced")
        target_us = to_us(to)
        if target_us < to_us(clock.now()):
            clock.set(to)  # raises the clock's own error
        fired = 0
        while True:
            with collector_paused(), self._store.transaction() as tx:
                done = self._fire_group(tx, clock, target_us)
            if done is None:
                break
            fired += done
            for hook in self.after_commit:
                hook()
        clock.set(to)
        return fired

    def _fire_group(self, tx: Tx, clock: ManualClock, target_us: int) -> int | None:
        """Fire the instants due by ``target_us`` in order, in one transaction, until the group is full; ``None``
        when nothing was due. Each instant is claimed when its turn comes, so a timer that an earlier instant
        booked, moved or cancelled is seen as it is then (as when each instant had its own transaction)."""
        fired = 0
        bound_us = target_us
        tail = tx.log.tail()
        self._open()
        try:
            while fired < self.chunk:
                # The earliest instant due, claimed and deleted in one statement when its turn comes.
                due = tx.timers.take_next_instant(bound_us, limit=self.chunk - fired)
                if not due:
                    break
                due_us = due[0].due_us
                if fired == 0:
                    bound_us = min(target_us, due_us + GROUP_SPAN_US)
                if due_us > to_us(clock.now()):
                    clock.set(from_us(due_us))
                fired += self._fire(tx, due, taken=True)
                if tx.log.tail() != tail:
                    break  # the stages apply what this instant appended before a later instant fires
        except BaseException:
            self._abandon(tx)
            raise
        self._close(tx)
        return fired if fired else None

    def _open(self) -> None:
        self._group_kind = None
        for batch in self.batches:
            batch.open_batch()

    def _close(self, tx: Tx) -> None:
        for batch in self.batches:
            batch.close_batch(tx)

    def _abandon(self, tx: Tx) -> None:
        """The group's transaction fails: what was deferred goes with it."""
        for batch in self.batches:
            batch.batch_rollback(0)
            batch.close_batch(tx)

    def _entering(self, tx: Tx, kind: str) -> None:
        """Deferred work is done before a timer of another kind fires (it may read what that work writes)."""
        if self._group_kind is not None and self._group_kind != kind:
            self._close(tx)
            self._open()
        self._group_kind = kind

    def _fire(self, tx: Tx, due: list[Timer], *, taken: bool = False) -> int:
        """Run the handlers of ``due``, each kind and instant under its own savepoint. ``taken``: the timers
        were deleted when claimed (``TimerStore.take_next_instant``)."""
        by_kind: dict[tuple[str, int], list[Timer]] = defaultdict(list)
        for timer in due:
            by_kind[(timer.kind, timer.due_us)].append(timer)
        done: list[int] = []
        for (kind, due_us), batch in by_kind.items():
            handler = self._handlers.get(kind)
            ids = [t.id for t in batch]
            if handler is None:
                log.error("no handler for timer kind %r; dropping %d timer(s)", kind, len(batch))
                done.extend(ids)
                continue
            self._entering(tx, kind)
            for deferring in self.batches:
                deferring.before_fire(tx, batch)
            marks = [b.batch_mark() for b in self.batches]
            try:
                # Set and released by the driver: one savepoint per fired instant.
                with DriverSavepoint(tx.conn, "ge_timer_fire"):
                    # The handler may schedule a timer under the same key again (a recurrence):
                    # delete first so that the new row survives.
                    if not taken:
                        tx.timers.delete(ids)
                    handler(tx, batch, from_us(due_us))
            except Exception:
                for deferred, mark in zip(self.batches, marks, strict=True):
                    deferred.batch_rollback(mark)
                log.exception("timer handler %r failed for %d timer(s); retrying with backoff", kind, len(batch))
                self._retry_later(tx, batch)
            for deferring in self.batches:
                deferring.after_fire(tx)
            done.extend(ids)
        return len(done)

    def _retry_later(self, tx: Tx, batch: list[Timer]) -> None:
        retry = []
        for timer in batch:
            if timer.attempts + 1 >= MAX_ATTEMPTS:
                log.error("timer %s gave up after %d attempts", timer.key, timer.attempts + 1)
                tx.timers.delete([timer.id])
                continue
            backoff_us = min(2**timer.attempts * 1_000_000, 3600 * 1_000_000)
            retry.append((timer.kind, timer.key, timer.due_us + backoff_us, timer.payload, timer.attempts + 1))
        for kind, key, due_us, payload, attempts in retry:
            tx.timers.schedule(kind, key, due_us, payload)
            tx.timers.set_attempts(key, attempts)

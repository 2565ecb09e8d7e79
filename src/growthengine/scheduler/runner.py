"""Runs stored timers when they fall due, on the real clock or while a manual clock is advanced."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable

from growthengine.clock import Clock, ManualClock, from_us, to_us
from growthengine.pipeline.ownership import Ownership, SoleOwner
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Store, Tx

log = logging.getLogger(__name__)

# A handler gets the open transaction, the timers of its kind that fell due together, and the due instant.
TimerHandler = Callable[[Tx, list[Timer], dt.datetime], None]

MAX_ATTEMPTS = 8
CLAIM_BATCH = 500


class UnknownTimerKind(LookupError):
    pass


class Scheduler:
    """Fires timers. Handlers register by kind; a timer fires once, with its effects, in one transaction."""

    def __init__(self, store: Store, clock: Clock, ownership: Ownership | None = None) -> None:
        self._store = store
        self._clock = clock
        self.ownership: Ownership = ownership or SoleOwner()
        self._handlers: dict[str, TimerHandler] = {}
        self.after_commit: list[Callable[[], object]] = []  # run after each committed batch (deliveries)

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
            with self._store.transaction() as tx:
                self.ownership.check(tx)
                due = tx.timers.claim_due(now_us, limit=CLAIM_BATCH, partitions=partitions)
                if not due:
                    return fired
                fired += self._fire(tx, due)
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
            with self._store.transaction() as tx:
                next_us = tx.timers.next_due_us()
                if next_us is None or next_us > target_us:
                    break
                if next_us > to_us(clock.now()):
                    clock.set(from_us(next_us))
                due = tx.timers.claim_due(target_us, limit=CLAIM_BATCH, at_us=next_us)
                if not due:
                    continue
                fired += self._fire(tx, due)
            for hook in self.after_commit:
                hook()
        clock.set(to)
        return fired

    def _fire(self, tx: Tx, due: list[Timer]) -> int:
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
            savepoint = tx.conn.begin_nested()
            try:
                # The handler may schedule a timer under the same key again (a recurrence):
                # delete first so that the new row survives.
                tx.timers.delete(ids)
                handler(tx, batch, from_us(due_us))
                savepoint.commit()
            except Exception:
                savepoint.rollback()
                log.exception("timer handler %r failed for %d timer(s); retrying with backoff", kind, len(batch))
                self._retry_later(tx, batch)
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

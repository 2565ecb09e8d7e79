"""The segment stage's part of a group of timer instants (``scheduler.runner.TimerBatch``): what each fired instant
decided, written once for the group.

Timers due milliseconds apart (100,000 carts whose hour runs out over one minute) fire instant after instant inside
one transaction, each instant's users evaluated as of its due time. Each instant's pass is kept here and the group's
passes are written together: one statement per table for the whole group instead of six per instant. The transition
listeners still hear of each instant's transitions at that instant (the flows defer the runs they start to the
group's end as well, after these writes: the scheduler closes its batches in order).

Every instant still sees what the earlier ones did:

* a user's state stays in memory (the segment engine's cache), so a user whose timers fire at two instants is
  evaluated the second time on the state the first left. Before an instant that names a user an unwritten pass
  holds, the passes are written first (:meth:`TimerGroup.before_fire`), outside that instant's savepoint: a failing
  instant then undoes only its own work;
* a timer a pass books that could fall due inside the group (within ``GROUP_SPAN_US`` of its instant) is written
  right after its instant (:meth:`TimerGroup.after_fire`), before the scheduler claims the next instant.

A failing instant's pass is never kept (it fails before it is added); when the whole group is abandoned, the users
of its unwritten passes are dropped from memory, which no longer says what is stored. A failure to write the
group's rows fails the group's transaction: nothing of the group is kept, and its timers fire again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from growthengine.scheduler.runner import GROUP_SPAN_US
from growthengine.segments.feeds import State
from growthengine.segments.segment_pass import PassBatch
from growthengine.storage.timer_store import Timer
from growthengine.storage.unit_of_work import Tx

Writer = Callable[[Tx, dict[str, State], PassBatch, int], None]
"""Writes what passes decided (their users' states, timers, memberships, transitions) as of an instant."""


@dataclass
class InstantPass:
    """What one fired instant decided, not yet written."""

    batch: PassBatch
    states: dict[str, State]
    now_us: int
    """The instant the users were evaluated at."""


@dataclass
class _Open:
    passes: list[InstantPass] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    soon: bool = False
    """A pass booked a timer that may fall due inside the group."""
    checked: bool = False
    """The in-memory state was checked against its fences in this group."""


class TimerGroup:
    """Defers the segment stage's writes to the end of a group of timer instants (per thread: each thread's
    scheduler runs its own groups)."""

    def __init__(self, write: Writer, forget: Callable[[set[str]], None]) -> None:
        self._write = write
        self._forget = forget
        self._local = threading.local()

    @property
    def current(self) -> _Open | None:
        group: _Open | None = getattr(self._local, "group", None)
        return group

    def keep(self, done: InstantPass) -> None:
        """An instant's pass, to be written with the group's others."""
        group = self.current
        assert group is not None
        group.passes.append(done)
        group.users.update(done.states)
        soon = done.now_us + GROUP_SPAN_US
        if any(due_us <= soon for _, _, due_us, _ in done.batch.timers):
            group.soon = True

    def flush(self, tx: Tx) -> None:
        group = self.current
        if group is None or not group.passes:
            return
        passes, group.passes = group.passes, []
        group.users = set()
        group.soon = False
        # The passes' users are distinct (before_fire), so their rows are written together in any order.
        states: dict[str, State] = {}
        merged = PassBatch()
        for done in passes:
            states.update(done.states)
            merged.timers += done.batch.timers
            merged.removed += done.batch.removed
            merged.members += done.batch.members
            merged.transitions += done.batch.transitions
        self._write(tx, states, merged, passes[-1].now_us)

    # scheduler.runner.TimerBatch ------------------------------------------------------------------------

    def open_batch(self) -> None:
        self._local.group = _Open()

    def batch_mark(self) -> int:
        group = self.current
        return len(group.passes) if group is not None else 0

    def batch_rollback(self, mark: int) -> None:
        group = self.current
        if group is None:
            return
        dropped = group.passes[mark:]
        del group.passes[mark:]
        gone = {user for done in dropped for user in done.states}
        if gone:
            self._forget(gone)
        group.users = {user for done in group.passes for user in done.states}
        group.checked = False

    def before_fire(self, tx: Tx, timers: Sequence[Timer]) -> None:
        group = self.current
        if group is None or not group.users:
            return
        users = group.users
        if any(timer.payload.get("u") in users for timer in timers):
            self.flush(tx)

    def after_fire(self, tx: Tx) -> None:
        group = self.current
        if group is not None and group.soon:
            self.flush(tx)

    def close_batch(self, tx: Tx) -> None:
        try:
            self.flush(tx)
        finally:
            self._local.group = None

"""Python's cyclic garbage collector: held off while a group of work runs, and set for a long-running process.

A group (a batch of the segment stage, a group of timers, a flow fan-out) allocates a few objects per item (rows,
states' entries, transitions), almost all freed by reference counting as soon as they are written. With the segment
stage's states held in memory, the collector's passes walk every cached state; triggered by the group's own
allocations they took a quarter of the time of 20,000 segment timers due at one instant. So a group runs with the
collector off and it is switched back on (as it was) when the group ends. Groups are bounded, and nesting and
threads are counted, so the collector is on again once the last group running ends.

In a long-running process (``growth serve``, ``growth worker``: :func:`settle_long_running_process`) what a group
leaves alive is mostly the segment state held in memory (the cache's entries), which lives for many groups: the
collector's older passes over it find nothing to free. There, when the last group running ends and a young pass is
owed (more new objects than the young threshold, as the collector itself counts them), that young pass runs
(cyclic garbage among the new objects is freed, as it would be) and what survives it is frozen (``gc.freeze``:
moved out of the generations the collector walks, in constant time) instead of being promoted to the older
generations and walked again by their passes. Frozen objects are still freed by reference counting as usual; only
a cycle among them that becomes garbage later waits, for the next *full pass* (unfreeze everything, collect every
generation, freeze again): it runs ``FULL_PASS_EVERY_S`` of system time after the last one, or once the objects
the groups added since then reach what that pass left (the heap doubled) and at least ``FULL_PASS_MIN_OBJECTS``
(as many as the collector's own oldest-generation pass waits for under ``LONG_RUNNING_THRESHOLDS``), whichever
comes first. Objects made outside groups (a request's) meet the young passes as before.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from growthengine.clock import system_seconds

LONG_RUNNING_THRESHOLDS = (20_000, 20, 20)
"""The collector's thresholds in ``growth serve`` and ``growth worker`` (Python's are ``(700, 10, 10)``)."""

FULL_PASS_MIN_OBJECTS = LONG_RUNNING_THRESHOLDS[0] * LONG_RUNNING_THRESHOLDS[1] * LONG_RUNNING_THRESHOLDS[2]
"""A full pass runs once the objects groups added since the last one reach what it left frozen, and at least this
many: the new objects after which the collector's own oldest-generation pass would run under those thresholds."""
FULL_PASS_EVERY_S = 600.0
"""At most this long (system time) between full passes while groups run: cycles among objects frozen alive that
became garbage later (not counted as added) are collected within it."""

_lock = threading.RLock()
"""Re-entrant: a full pass may run finalizers, on this thread, that hold a group of their own."""
_holders = 0
_was_enabled = False


class _Policy:
    """The long-running process's freeze policy (off until :func:`settle_long_running_process`)."""

    def __init__(self) -> None:
        self.on = False
        self.frozen_at_full = 0
        """Objects frozen by the last full pass (what the heap held then)."""
        self.added = 0
        """New objects (net of those freed) at the group ends that owed a young pass, since the last full pass."""
        self.full_at_s = 0.0
        self.full_passes = 0
        self.freezes = 0
        self.thresholds_before: tuple[int, int, int] = (700, 10, 10)
        self._busy = False

    def full_pass(self) -> None:
        """Collect every generation, the frozen objects included, and freeze what is left."""
        self._busy = True
        try:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        finally:
            self._busy = False
        self.frozen_at_full = gc.get_freeze_count()  # a walk of the frozen list: once per full pass
        self.added = 0
        self.full_at_s = system_seconds()
        self.full_passes += 1

    def group_ended(self) -> None:
        """When a young pass is owed (the young threshold passed), run it, then freeze what survived (a full pass
        instead when one is due)."""
        if self._busy:  # a group held by a finalizer that the full pass runs: that pass sees to it
            return
        young = gc.get_count()[0]  # tracked objects allocated less those freed since the last young pass
        if young <= gc.get_threshold()[0]:
            return  # no young pass owed yet: what the groups made waits in the young generation for a later end
        self.added += young
        due = max(FULL_PASS_MIN_OBJECTS, self.frozen_at_full)
        if self.added >= due or system_seconds() - self.full_at_s >= FULL_PASS_EVERY_S:
            self.full_pass()
            return
        gc.collect(0)  # the young pass owed: cyclic garbage among what was made is freed, the rest survives
        gc.freeze()
        self.freezes += 1


policy = _Policy()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic garbage collector off (as it was afterwards, once every holder is done; in a
    long-running process what the groups left is frozen then, see the module's docstring)."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            if _holders == 1 and _was_enabled and policy.on:
                policy.group_ended()  # still held meanwhile: a group a finalizer holds during a full pass nests
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()


def settle_long_running_process() -> None:
    """Set the collector up for a server or worker that has finished starting.

    What start-up built (modules, the app, the engine's configuration) lives as long as the process: it is
    collected once and frozen (``gc.freeze``), so later passes never walk it again. And a young pass runs every
    20,000 new objects rather than every 700: a request's objects (a decoded 100-call batch is a few hundred
    dicts and lists) are then almost always freed by reference counting before any pass sees them, instead of
    being walked and promoted to older generations that full passes walk again. Measured on the API under a burst
    of 100-call batches: the collector took about 9 us of the event loop's CPU per event with Python's defaults,
    under 1 us this way. Cyclic garbage is still collected, only in larger rounds. From now on what groups of work
    leave alive is frozen at their end (the freeze policy in the module's docstring).
    """
    with _lock:
        if not policy.on:
            policy.thresholds_before = gc.get_threshold()
        gc.set_threshold(*LONG_RUNNING_THRESHOLDS)
        policy.full_pass()
        policy.on = True


def unsettle() -> None:
    """Back to the collector's set-up before :func:`settle_long_running_process` (everything unfrozen, the
    thresholds as they were, no freeze policy): for a benchmark or a test that settled the process it runs in."""
    with _lock:
        if policy.on:
            gc.set_threshold(*policy.thresholds_before)
        policy.on = False
        gc.unfreeze()

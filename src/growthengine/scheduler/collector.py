"""Python's cyclic garbage collector held off while a group of timers fires.

A group allocates a few objects per timer (rows, states' entries, transitions), almost all freed by reference
counting as soon as they are written. With the segment stage's states held in memory, the collector's full passes
walk every cached state; triggered by the group's own allocations they took a quarter of the time of 20,000
segment timers due at one instant. So a group runs with the collector off and it is switched back on (as it was)
when the group ends: what cycles the group made are collected afterwards, at the collector's next pass. Groups are
bounded (``CLAIM_BATCH`` timers), and nesting and threads are counted, so the collector is on again once the last
group running ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the body with the cyclic garbage collector off (as it was afterwards, once every holder is done)."""
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
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()

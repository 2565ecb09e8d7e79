"""The one clock.

Nothing else in the engine reads the wall clock. The same engine runs on :class:`RealClock`,
on a :class:`ManualClock` that only moves when told (the test clock of the HTTP API), and on
the simulator's clock (also a :class:`ManualClock`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Literal, Protocol

UTC = dt.UTC

ClockMode = Literal["real", "manual"]


class Clock(Protocol):
    """Tells the engine what time it is."""

    @property
    def mode(self) -> ClockMode: ...

    def now(self) -> dt.datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class RealClock:
    """The wall clock."""

    mode: ClockMode = "real"

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class ClockError(ValueError):
    """A manual clock was asked to do something it cannot (such as go backwards)."""


class ManualClock:
    """A clock that moves only when told, like Stripe's test clocks."""

    mode: ClockMode = "manual"

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ClockError("the manual clock needs a start time with a UTC offset")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        return self._now

    def set(self, instant: dt.datetime) -> None:
        """Move to ``instant``; the clock never goes backwards."""
        if instant.tzinfo is None:
            raise ClockError("time must carry a UTC offset")
        instant = instant.astimezone(UTC)
        with self._lock:
            if instant < self._now:
                raise ClockError(
                    f"the clock cannot go back from {self._now.isoformat()} to {instant.isoformat()}"
                )
            self._now = instant


def system_seconds() -> float:
    """System time, always real, in seconds since the epoch: leases, heartbeats, retries, rate limits, webhook
    windows, sessions and lag use it; business rules use a :class:`Clock` (which may be manual)."""
    return time.time()


def to_us(instant: dt.datetime) -> int:
    """Microseconds since the Unix epoch (how the storage layer keeps instants)."""
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> dt.datetime:
    """The inverse of :func:`to_us`, in UTC."""
    return _EPOCH + dt.timedelta(microseconds=us)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

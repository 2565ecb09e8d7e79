"""A token bucket: at most ``rate`` requests a second on average, bursts of up to ``burst``.

The clock and the sleep are injected (a monotonic clock measures pacing only; it is not the engine's time).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, sleeping until they are there; returns how long it slept."""
        if tokens > self.burst:
            raise ValueError(f"cannot take {tokens} tokens from a bucket of {self.burst}")
        with self._lock:
            now = self._clock()
            if now > self._last:
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
            if self._tokens >= tokens and self._last <= now:
                self._tokens -= tokens
                return 0.0
            # Reserve: the tokens that accrue until ``ready`` are ours, so the bucket is empty as of then. The
            # reservation is kept in the bucket, so a clock that does not move during the sleep (a fake one)
            # still paces the next caller.
            ready = self._last + (tokens - self._tokens) / self.rate
            self._tokens = 0.0
            self._last = ready
        wait = ready - now
        self._sleep(wait)
        return wait

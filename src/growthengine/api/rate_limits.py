"""Non-blocking token buckets by key: the API answers 429 with ``Retry-After`` instead of waiting.

Limits run on system time (a monotonic clock, injected): a manual business clock never stops or frees a client.
The buckets live in the process; several API processes each apply the limit to the requests they serve.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class KeyedLimiter:
    """At most ``rate`` tokens a second per key on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: float, *, now: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._now = now
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, as of)
        self._lock = threading.Lock()

    def _tokens(self, key: str, now: float) -> float:
        tokens, since = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - since) * self.rate)

    def take(self, key: str, tokens: float = 1.0) -> float:
        """Take ``tokens`` if the bucket has them and answer 0; else take nothing and answer the seconds to wait."""
        with self._lock:
            now = self._now()
            available = self._tokens(key, now)
            if available >= tokens:
                self._store(key, available - tokens, now)
                return 0.0
            return (tokens - available) / self.rate

    def wait(self, key: str, tokens: float = 1.0) -> float:
        """The seconds until ``tokens`` could be taken (0 if now), taking nothing."""
        with self._lock:
            if key not in self._buckets:
                return 0.0
            available = self._tokens(key, self._now())
            return 0.0 if available >= tokens else (tokens - available) / self.rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        buckets = self._buckets
        if key not in buckets and len(buckets) >= self._max_keys:
            # Forget the buckets that have filled up again: they hold nothing a fresh bucket would not.
            full = [k for k, (t, since) in buckets.items() if t + (now - since) * self.rate >= self.burst]
            for k in full:
                del buckets[k]
            if len(buckets) >= self._max_keys:
                buckets.clear()
        buckets[key] = (tokens, now)

"""Dashboard sign-in: the admin key once, then a session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS).

The cookie holds a random token; the database holds its hash and expiry (``dashboard_sessions``), so a session
holds in every engine process and across restarts, and ends at logout. Never the key. Sessions and the limit on
failed sign-ins run on system time (a manual test clock must not sign anyone in or out).
"""

from __future__ import annotations

import math
import secrets
from collections import deque

from growthengine.clock import Clock, to_us
from growthengine.storage.dashboard_sessions import DashboardSessionStore
from growthengine.storage.unit_of_work import Store

COOKIE = "growth_session"
LANG_COOKIE = "growth_lang"
SESSION_US = 12 * 3600 * 1_000_000
_MAX_TOKEN = 128


class DashboardSessions:
    def __init__(self, store: Store, system_clock: Clock) -> None:
        self._store = store
        self._clock = system_clock

    def open(self) -> str:
        """A new session; the token goes into the cookie."""
        token = secrets.token_urlsafe(32)
        now_us = to_us(self._clock.now())
        with self._store.transaction() as tx:
            DashboardSessionStore(tx.conn).add(token, now_us, now_us + SESSION_US)
        return token

    def valid(self, token: str | None) -> bool:
        if not token or len(token) > _MAX_TOKEN:
            return False
        with self._store.transaction() as tx:
            return DashboardSessionStore(tx.conn).is_open(token, to_us(self._clock.now()))

    def close(self, token: str | None) -> None:
        if token and len(token) <= _MAX_TOKEN:
            with self._store.transaction() as tx:
                DashboardSessionStore(tx.conn).revoke(token)


class LoginThrottle:
    """At most ``attempts`` failed sign-ins per client in any ``window_s`` seconds (system time); then 429."""

    def __init__(self, system_clock: Clock, attempts: int, window_s: float, max_clients: int = 10_000) -> None:
        self._clock = system_clock
        self._attempts = attempts
        self._window_us = int(window_s * 1_000_000)
        self._max_clients = max_clients
        self._failures: dict[str, deque[int]] = {}

    def _recent(self, client: str, now_us: int) -> deque[int]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now_us - self._window_us:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds until this client may try again, or None when it may try now."""
        now_us = to_us(self._clock.now())
        failures = self._recent(client, now_us)
        if len(failures) < self._attempts:
            return None
        return max(1, math.ceil((failures[0] + self._window_us - now_us) / 1_000_000))

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def failed(self, client: str) -> None:
        now_us = to_us(self._clock.now())
        if client not in self._failures and len(self._failures) >= self._max_clients:
            self._forget_idle(now_us)
        failures = self._failures.setdefault(client, deque())
        failures.append(now_us)
        while len(failures) > self._attempts:
            failures.popleft()

    def _forget_idle(self, now_us: int) -> None:
        for client in [c for c, f in self._failures.items() if not self._recent(c, now_us)]:
            del self._failures[client]
        if len(self._failures) >= self._max_clients:  # still full: the oldest client goes
            del self._failures[next(iter(self._failures))]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target

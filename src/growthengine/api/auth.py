"""API keys and the limits around them.

Keys are admin keys (every route) or write keys (ingestion only). Only the SHA-256 of a key is kept: the keys of
the environment (``GROWTH_API_KEY``, ``GROWTH_WRITE_KEYS``) hashed at start, and named keys (``growth keys``)
read from the database, so that several can be active at once and one can be revoked without a restart.

:class:`KeyGuard` adds two limits, on system time: a client address that sends too many wrong keys gets 429 for a
while (every key it sends, so that guessing stops), and each key may send only so many ingest requests a second
(429 with ``Retry-After``, without waiting).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from growthengine.api.errors import ApiError
from growthengine.api.rate_limits import KeyedLimiter
from growthengine.settings import Settings

Role = Literal["admin", "write"]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Who a key is: its name (``env:...`` for the environment's keys), its role and its hash."""

    name: str
    role: Role
    digest: str


NamedKeys = Callable[[], Mapping[str, KeyInfo]]
"""Reads the active named keys, by hash (see :mod:`growthengine.keys`)."""


class KeyRing:
    """Holds only the SHA-256 of each key; the keys themselves are never kept.

    A key is found by its hash in a dict: the hash of a guess says nothing about the hash of a real key, so the
    lookup's timing gives nothing away. Named keys are read again every ``refresh_s`` (so a revoked key stops
    working within that) and at once when a key is not known (so a key made a moment ago works at its first use).
    """

    def __init__(self, admin_hashes: Iterable[str], write_hashes: Iterable[str], *, named: NamedKeys | None = None,
                 refresh_s: float = 2.0, now: Callable[[], float] = time.monotonic) -> None:
        self._static: dict[str, KeyInfo] = {}
        for i, digest in enumerate(write_hashes):
            self._static[digest] = KeyInfo(f"env:write#{i + 1}", "write", digest)
        for i, digest in enumerate(admin_hashes):
            self._static[digest] = KeyInfo("env:admin" if i == 0 else f"env:admin#{i + 1}", "admin", digest)
        self._named_source = named
        self._named: Mapping[str, KeyInfo] = {}
        self._refresh_s = refresh_s
        self._now = now
        self._loaded_at = -math.inf
        self._lock = threading.Lock()

    @classmethod
    def from_keys(cls, admin_keys: Iterable[str], write_keys: Iterable[str], *,
                  named: NamedKeys | None = None) -> KeyRing:
        return cls([hash_key(k) for k in admin_keys], [hash_key(k) for k in write_keys], named=named)

    def add_ephemeral_admin(self) -> str:
        """A new admin key for this process only (the built-in simulator): never printed, never stored."""
        key = "ge_sim_" + secrets.token_urlsafe(24)
        digest = hash_key(key)
        self._static[digest] = KeyInfo("process:simulator", "admin", digest)
        return key

    def identify(self, key: str) -> KeyInfo | None:
        digest = hash_key(key)
        found = self._static.get(digest)
        if found is not None or self._named_source is None:
            return found
        stale = self._now() - self._loaded_at > self._refresh_s
        found = None if stale else self._named.get(digest)
        if found is None:
            found = self._reload().get(digest)
        return found

    def role_of(self, key: str) -> Role | None:
        info = self.identify(key)
        return info.role if info is not None else None

    def _reload(self) -> Mapping[str, KeyInfo]:
        assert self._named_source is not None
        with self._lock:
            named = self._named_source()
            self._named, self._loaded_at = named, self._now()
        return named


def key_from_header(authorization: str | None) -> str | None:
    """The key in ``Bearer <key>`` or in HTTP Basic's username (Segment and RudderStack SDKs)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        username, _, password = decoded.partition(":")
        return username or password or None
    return None


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="growth", Basic realm="growth"'}


def _too_many(message: str, wait_s: float) -> ApiError:
    return ApiError(429, "rate_limited", message, headers={"Retry-After": str(max(1, math.ceil(wait_s)))})


class KeyGuard:
    """Checks a request's key against the key ring, with the wrong-key and ingest limits of the settings."""

    def __init__(self, keys: KeyRing, settings: Settings, *, now: Callable[[], float] = time.monotonic,
                 on_limited: Callable[[str], None] | None = None) -> None:
        self.keys = keys
        self.failures = KeyedLimiter(settings.failed_key_limit / settings.failed_key_window_s,
                                     settings.failed_key_limit, now=now)
        rate = settings.ingest_rate_per_key
        self.ingest = KeyedLimiter(rate, settings.ingest_burst_per_key, now=now) if rate > 0 else None
        self._metrics_digest = hash_key(settings.metrics_key) if settings.metrics_key else None
        self._on_limited = on_limited or (lambda _limit: None)

    def check(self, authorization: str | None, client: str, *, ingest: bool = False) -> KeyInfo:
        """The caller's key, or an :class:`ApiError`: 401 without a known key, 429 past a limit."""
        key = key_from_header(authorization)
        if key is None:
            raise ApiError(401, "unauthorized", "send an API key: Authorization: Bearer <key>", headers=_CHALLENGE)
        self.refuse_if_locked_out(client)
        info = self.keys.identify(key)
        if info is None:
            self.record_failure(client)
            raise ApiError(401, "unauthorized", "the API key is not known", headers=_CHALLENGE)
        if ingest and self.ingest is not None:
            wait = self.ingest.take(info.digest)
            if wait > 0:
                self._on_limited("ingest")
                raise _too_many(f"this key sends more than {self.ingest.rate:g} ingest requests a second; "
                                "slow down and retry after the time in Retry-After", wait)
        return info

    def refuse_if_locked_out(self, client: str) -> None:
        """429 while ``client`` has sent too many wrong keys (or passwords: the dashboard may use this too)."""
        wait = self.failures.wait(client)
        if wait > 0:
            self._on_limited("failed_key")
            raise _too_many("too many wrong API keys from this address; retry after the time in Retry-After", wait)

    def record_failure(self, client: str) -> None:
        self.failures.take(client)

    def is_metrics_key(self, authorization: str | None) -> bool:
        """``GROWTH_METRICS_KEY``: a token that opens ``/metrics`` and nothing else."""
        key = key_from_header(authorization)
        if key is None or self._metrics_digest is None:
            return False
        return hmac.compare_digest(hash_key(key), self._metrics_digest)

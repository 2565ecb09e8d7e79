"""API keys: an admin key (every route) and write keys (ingestion only), kept hashed, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Literal

Role = Literal["admin", "write"]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """Holds only the SHA-256 of each key; the keys themselves are never kept."""

    def __init__(self, admin_hashes: Iterable[str], write_hashes: Iterable[str]) -> None:
        self._admin = list(admin_hashes)
        self._write = list(write_hashes)

    @classmethod
    def from_keys(cls, admin_keys: Iterable[str], write_keys: Iterable[str]) -> KeyRing:
        return cls([hash_key(k) for k in admin_keys], [hash_key(k) for k in write_keys])

    def add_ephemeral_admin(self) -> str:
        """A new admin key for this process only (the built-in simulator): never printed, never stored."""
        key = "ge_sim_" + secrets.token_urlsafe(24)
        self._admin.append(hash_key(key))
        return key

    def role_of(self, key: str) -> Role | None:
        digest = hash_key(key)
        # Compare against every stored hash so that timing says nothing about which matched.
        admin = any([hmac.compare_digest(digest, h) for h in self._admin])
        write = any([hmac.compare_digest(digest, h) for h in self._write])
        if admin:
            return "admin"
        if write:
            return "write"
        return None


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

"""API keys an operator manages: named admin and write keys, kept hashed in the database, several active at once.

A named key is one small document in ``engine_state`` (``api_key:<name>``) with its role, its SHA-256, a hint (its
last four characters, to tell keys apart) and when it was made and revoked, so every process that shares the
database (API processes, workers) sees the same keys. The keys of the environment (``GROWTH_API_KEY``,
``GROWTH_WRITE_KEYS``) work beside them. An engine started without any admin key makes one, named ``admin``, and
prints it once. Times here are system time: keys are operations, not business.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from growthengine.api.auth import KeyInfo, KeyRing, Role, hash_key
from growthengine.clock import RealClock
from growthengine.settings import Settings
from growthengine.storage.plain_reads import read
from growthengine.storage.unit_of_work import Store
from growthengine.timefmt import format_instant

KEY_FILE = "admin_key.sha256"
"""Where engines before named keys kept the hash of the admin key they made; still honoured when present."""

PREFIX = "api_key:"
FIRST_ADMIN = "admin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class KeyCommandError(ValueError):
    """A key command that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class StoredKey:
    name: str
    role: Role
    digest: str
    hint: str
    created: str
    revoked: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> StoredKey:
        return cls(name=doc["name"], role=doc["role"], digest=doc["hash"], hint=doc.get("hint", ""),
                   created=doc["created"], revoked=doc.get("revoked"))

    def doc(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "hash": self.digest, "hint": self.hint,
                "created": self.created, "revoked": self.revoked}


def new_key(role: Role) -> str:
    return f"ge_{role}_" + secrets.token_urlsafe(24)


def _now() -> str:
    return format_instant(RealClock().now().replace(microsecond=0))


def stored_keys(store: Store) -> list[StoredKey]:
    """Every named key, revoked ones too, by name."""
    with store.transaction() as tx:
        docs = tx.state.prefixed(PREFIX)
    return sorted((StoredKey.from_doc(d) for d in docs.values()), key=lambda k: k.name)


def create_key(store: Store, name: str, role: Role) -> str:
    """Make a named key; returns the key itself (shown once, never kept)."""
    if not _NAME.match(name):
        raise KeyCommandError(f"a key name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit; "
                        f"not {name!r}")
    if role not in ("admin", "write"):
        raise KeyCommandError(f"the role is admin or write, not {role!r}")
    key = new_key(role)
    with store.transaction() as tx:
        if store.dialect == "postgresql":  # two processes making the first admin key at once: one wins
            tx.conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727002)")
        existing = tx.state.get(PREFIX + name)
        if existing is not None and existing.get("revoked") is None:
            raise KeyCommandError(f"a key named {name!r} is active; revoke it first or choose another name")
        record = StoredKey(name, role, hash_key(key), key[-4:], _now())
        tx.state.put(PREFIX + name, record.doc())
    return key


def revoke_key(store: Store, name: str, *, allow_last_admin: bool = False) -> StoredKey:
    """Revoke a named key: processes stop accepting it within ``key_refresh_s``."""
    with store.transaction() as tx:
        docs = tx.state.prefixed(PREFIX)
        doc = docs.get(PREFIX + name)
        if doc is None:
            raise KeyCommandError(f"no key named {name!r} (growth keys list shows the names)")
        key = StoredKey.from_doc(doc)
        if not key.active:
            raise KeyCommandError(f"the key {name!r} was already revoked at {key.revoked}")
        others = [d for k, d in docs.items() if k != PREFIX + name and d["role"] == "admin" and not d.get("revoked")]
        if key.role == "admin" and not others and not allow_last_admin:
            raise KeyCommandError(f"{name!r} is the last named admin key; make another first "
                            "(growth keys create NAME --role admin) or pass --force")
        revoked = StoredKey(key.name, key.role, key.digest, key.hint, key.created, _now())
        tx.state.put(PREFIX + name, revoked.doc())
    return revoked


def active_named_keys(store: Store) -> dict[str, KeyInfo]:
    """The active named keys by hash, read without waiting for the engine's writers (for :class:`KeyRing`)."""
    rows = read(store, "SELECT value FROM engine_state WHERE key LIKE ?", [PREFIX + "%"])
    found: dict[str, KeyInfo] = {}
    for (value,) in rows:
        doc = orjson.loads(value)
        if doc.get("revoked") is None:
            found[doc["hash"]] = KeyInfo(doc["name"], doc["role"], doc["hash"])
    return found


def load_keyring(settings: Settings, store: Store) -> tuple[KeyRing, str | None]:
    """The key ring for this engine, and a freshly made admin key to print once (or None).

    A key is made only when there is no admin key at all: none in the environment, none from an older engine's
    file, no active named one.
    """
    admin_hashes = [hash_key(settings.api_key)] if settings.api_key else []
    legacy = Path(settings.data_dir) / KEY_FILE
    if legacy.exists():
        admin_hashes.append(legacy.read_text(encoding="ascii").strip())
    write_hashes = [hash_key(k) for k in settings.write_keys]
    made = None
    if not admin_hashes and not any(k.role == "admin" for k in active_named_keys(store).values()):
        try:
            made = create_key(store, FIRST_ADMIN, "admin")
        except KeyCommandError:  # another process made it a moment ago
            made = None
    ring = KeyRing(admin_hashes, write_hashes, named=lambda: active_named_keys(store),
                   refresh_s=settings.key_refresh_s)
    return ring, made


def first_key_line(key: str) -> str:
    """The one line ``growth serve`` prints for the admin key it made (scripts read the key from it)."""
    return (f"Admin API key (named {FIRST_ADMIN!r}, shown once): {key}  -- only its SHA-256 is kept, in the "
            "database; make another with: growth keys create NAME --role admin")

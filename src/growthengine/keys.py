"""The admin key of an engine started without ``GROWTH_API_KEY``: made once, kept hashed under the data dir."""

from __future__ import annotations

import secrets
from pathlib import Path

from growthengine.api.auth import KeyRing, hash_key
from growthengine.settings import Settings

KEY_FILE = "admin_key.sha256"


def load_keyring(settings: Settings) -> tuple[KeyRing, str | None]:
    """The key ring for this engine, and a freshly made admin key to print once (or None)."""
    write_hashes = [hash_key(k) for k in settings.write_keys]
    if settings.api_key:
        return KeyRing([hash_key(settings.api_key)], write_hashes), None
    path = Path(settings.data_dir) / KEY_FILE
    if path.exists():
        return KeyRing([path.read_text(encoding="ascii").strip()], write_hashes), None
    key = "ge_admin_" + secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(hash_key(key) + "\n", encoding="ascii")
    path.chmod(0o600)
    return KeyRing([hash_key(key)], write_hashes), key

"""Dashboard sign-in: the admin key once, then a signed session cookie (HttpOnly, SameSite=Strict).

The cookie holds only an expiry instant and an HMAC-SHA256 of it under a secret made when the dashboard is mounted
(so a restart signs everyone out); never the key. Expiry follows the engine's clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

COOKIE = "growth_session"
LANG_COOKIE = "growth_lang"
SESSION_US = 12 * 3600 * 1_000_000


class SessionSigner:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, now_us: int) -> str:
        payload = f"v1.{now_us + SESSION_US}.{secrets.token_hex(8)}".encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._mac(payload)

    def valid(self, token: str | None, now_us: int) -> bool:
        if not token or len(token) > 512 or "." not in token:
            return False
        encoded, _, mac = token.rpartition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (ValueError, TypeError):
            return False
        if not hmac.compare_digest(self._mac(payload), mac):
            return False
        parts = payload.decode("ascii", errors="replace").split(".")
        if len(parts) != 3 or parts[0] != "v1" or not parts[1].isdigit():
            return False
        return now_us < int(parts[1])


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target

"""One-click unsubscribe links (RFC 8058): a signed token names the user, the channel and the message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from growthengine.private_files import private_dir, write_private

SECRET_FILE = "unsubscribe.secret"  # noqa: S105  (the file's name, not a secret)


def engine_secret(data_dir: Path) -> bytes:
    """The engine's own signing secret (32 random bytes under the data dir, made once, readable by its owner only):
    it signs unsubscribe links and keys the one-way tokens of erased users (``erasure.request``)."""
    path = private_dir(data_dir, tighten=True) / SECRET_FILE
    if not path.exists():
        write_private(path, os.urandom(32).hex())
    return bytes.fromhex(path.read_bytes().decode().strip())


class BadToken(ValueError):
    pass


@dataclass(frozen=True)
class Unsubscribe:
    user_id: str
    channel: str
    message_id: str


class UnsubscribeLinks:
    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self._base_url = base_url.rstrip("/")

    @classmethod
    def from_data_dir(cls, data_dir: Path, base_url: str) -> UnsubscribeLinks:
        """The signing secret lives under the data dir, made once (32 random bytes)."""
        return cls(engine_secret(data_dir), base_url)

    def token(self, user_id: str, channel: str, message_id: str) -> str:
        body = _unpadded(orjson.dumps([user_id, channel, message_id]))
        return f"{body}.{_unpadded(self._mac(body))}"

    def url(self, user_id: str, channel: str, message_id: str) -> str:
        return f"{self._base_url}/u/{self.token(user_id, channel, message_id)}"

    def read(self, token: str) -> Unsubscribe:
        try:
            body, mac = token.split(".")  # base64url has no dot: a token this engine made has exactly one
            if not hmac.compare_digest(self._mac(body), _padded(mac)):
                raise BadToken("the link's signature does not match")
            user_id, channel, message_id = orjson.loads(_padded(body))
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            raise BadToken(f"not an unsubscribe link this engine made ({exc})") from None
        return Unsubscribe(str(user_id), str(channel), str(message_id))

    def _mac(self, body: str) -> bytes:
        """The first 16 bytes of the body's HMAC-SHA256 under the engine's secret."""
        return hmac.new(self._secret, body.encode(), hashlib.sha256).digest()[:16]


def _unpadded(raw: bytes) -> str:
    """``raw`` in base64url without its ``=`` padding (a ``=`` is never anything but padding)."""
    return base64.urlsafe_b64encode(raw).decode().replace("=", "")


def _padded(text: str) -> bytes:
    """Unpadded base64url decoded: the padding a length needs is put back first."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

"""What the ads audience providers share: normalized, SHA-256-hashed emails, batches, and the sync result.

An ads "send" adds one user to the audience (or removes them, with ``data["audience_action"] = "remove"``);
``add``/``remove`` sync many at once. Adding a member twice changes nothing, so a repeated sync is harmless;
each provider still passes our key where its API has one. Emails are hashed before they leave the engine and
are never logged. Ads platforms send no delivery webhooks, so ``parse_webhook`` rejects every request.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from growthengine.channels.providers.base import Delivery, DeliveryEvent, OutboundMessage, WebhookRejected

Action = Literal["add", "remove"]
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def normalize_email(email: str) -> str:
    """Trimmed and lower-cased, as Facebook and Google match on."""
    return email.strip().lower()


def hash_email(value: str) -> str:
    """The SHA-256 hex of the normalized email; a value that already is such a hash is kept as it is."""
    normalized = normalize_email(value)
    if _SHA256_HEX.match(normalized):
        return normalized
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def hashed_members(emails: Iterable[str]) -> list[str]:
    """Unique hashes in first-seen order, blanks dropped."""
    seen: dict[str, None] = {}
    for email in emails:
        if email and email.strip():
            seen.setdefault(hash_email(email), None)
    return list(seen)


def batched(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def sync_key(action: Action, hashes: Sequence[str]) -> str:
    """A stable key for a sync when the caller gives none: the same members and action give the same key."""
    digest = hashlib.sha256(action.encode())
    for value in sorted(hashes):
        digest.update(value.encode())
    return digest.hexdigest()


def key_number(key: str, bits: int = 63) -> int:
    """A positive integer derived from ``key`` (for APIs whose idempotency or session ids are numbers)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % (1 << bits) or 1


@dataclass
class AudienceSyncResult:
    """How a sync went: members asked for, batches sent, what the service counted, and any error."""

    action: Action
    requested: int
    batches: int = 0
    received: int = 0
    invalid: int = 0
    reference: str | None = None
    errors: list[str] = field(default_factory=list)
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


class AudienceProvider(ABC):
    """Base of the ads audience providers: ``send`` is a one-member sync."""

    channel = "ads"
    name = "audience"

    def add(self, emails: Iterable[str], *, key: str | None = None) -> AudienceSyncResult:
        """Add these emails (or their SHA-256 hashes) to the audience."""
        return self._sync_all("add", emails, key)

    def remove(self, emails: Iterable[str], *, key: str | None = None) -> AudienceSyncResult:
        """Remove these emails (or their SHA-256 hashes) from the audience."""
        return self._sync_all("remove", emails, key)

    def _sync_all(self, action: Action, emails: Iterable[str], key: str | None) -> AudienceSyncResult:
        hashes = hashed_members(emails)
        if not hashes:
            return AudienceSyncResult(action, 0)
        return self._sync(action, hashes, key or sync_key(action, hashes))

    @abstractmethod
    def _sync(self, action: Action, hashes: list[str], key: str) -> AudienceSyncResult:
        """Send ``hashes`` in batches; stop at the first batch that fails."""

    def send(self, msg: OutboundMessage) -> Delivery:
        action = msg.data.get("audience_action", "add")
        if action not in ("add", "remove"):
            return Delivery.failed(self.name, f"unknown audience_action {str(action)[:20]!r}", permanent=True)
        result = self._sync_all(action, [msg.to], msg.id)
        if result.requested == 0:
            return Delivery.failed(self.name, "no email to sync", permanent=True, invalid_address=True)
        if result.ok and result.invalid >= result.requested:
            return Delivery.failed(self.name, "the service found the member invalid", permanent=True,
                                   invalid_address=True)
        if result.ok:
            return Delivery.sent(self.name, result.reference)
        return Delivery.failed(self.name, result.errors[0], permanent=result.permanent)

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        raise WebhookRejected(f"{self.name} sends no delivery webhooks")

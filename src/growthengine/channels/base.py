"""The channel interface every provider implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from growthengine.domain.messages import Message
from growthengine.storage.unit_of_work import Tx


@dataclass(frozen=True)
class Delivery:
    """What a provider said: ``sent`` (accepted), or ``failed`` with a reason (``permanent`` is not retried)."""

    status: Literal["sent", "failed"]
    provider: str
    reason: str | None = None
    permanent: bool = True
    provider_id: str | None = None


class ChannelProvider(Protocol):
    """Delivers a message on one channel. ``message.id`` is the idempotency key: a provider that has one gets it."""

    channel: str
    name: str

    def send(self, tx: Tx, message: Message, traits: dict[str, Any], now_us: int) -> Delivery:
        """Hand the message over. Called after the message is in the send ledger, inside its transaction."""
        ...

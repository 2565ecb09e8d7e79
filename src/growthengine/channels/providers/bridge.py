"""From a ledger message to an :class:`OutboundMessage`, and a bridge that lets a pure provider sit where the
dispatcher still expects the ledger-bound :class:`~growthengine.channels.base.ChannelProvider`.

The bridge exists so that ``build_providers`` keeps working when a real provider is chosen; the delivery worker
(which calls providers after the ledger commit) uses :func:`outbound_message` and the pure provider directly.
"""

from __future__ import annotations

from typing import Any

from growthengine.channels.base import Delivery as LedgerDelivery
from growthengine.channels.providers.base import Kind, OutboundMessage, Provider, Urgency
from growthengine.domain.messages import Message
from growthengine.gate.history import PROVIDER_ADDRESS_TRAIT
from growthengine.storage.unit_of_work import Tx

# Where each channel's address lives in the profile traits (CONTRACT.md 3.1): one table, the send decision's.
ADDRESS_TRAIT = PROVIDER_ADDRESS_TRAIT


class MissingAddress(ValueError):
    """The user has no address on the message's channel."""


def outbound_message(message: Message, traits: dict[str, Any], *, unsubscribe_url: str | None = None,
                     ) -> OutboundMessage:
    """The provider's view of a ledger message, addressed from the user's traits."""
    trait = ADDRESS_TRAIT.get(message.channel)
    address = traits.get(trait) if trait else None
    if not isinstance(address, str) or not address.strip():
        raise MissingAddress(f"no {trait or 'address'} for message {message.id}")
    urgency: Urgency = "high" if message.data.get("urgency") == "high" else "normal"
    kind: Kind = "transactional" if message.kind == "transactional" else "marketing"
    url = unsubscribe_url or message.data.get("unsubscribe_url")
    return OutboundMessage(
        id=message.id, user_id=message.user_id, channel=message.channel, kind=kind, to=address.strip(),
        title=message.title, subject=message.subject, body=message.body, html=message.html,
        image_url=message.image_url, urgency=urgency, unsubscribe_url=url if isinstance(url, str) else None,
        # An ads message says whether it adds or removes (the audience providers read ``audience_action``).
        data={"flow": message.flow, "step": message.step,
              **{k: v for k, v in message.data.items() if k in ("audience", "audience_action")}},
    )


class LedgerBridge:
    """A pure provider behind the ledger-bound interface (it calls the provider inside the transaction)."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.channel = provider.channel
        self.name = provider.name

    def send(self, tx: Tx, message: Message, traits: dict[str, Any], now_us: int) -> LedgerDelivery:
        try:
            outbound = outbound_message(message, traits)
        except MissingAddress:
            return LedgerDelivery("failed", self.name, reason="no_address", permanent=True)
        delivery = self.provider.send(outbound)
        return LedgerDelivery(delivery.status, delivery.provider, reason=delivery.reason,
                              permanent=delivery.permanent, provider_id=delivery.provider_id)

"""The local outbox: where push, email, SMS and ads sends go when a channel has no provider credentials.

It keeps exactly one row per message id, so the embedded default works offline and never sends twice.
"""

from __future__ import annotations

from typing import Any

from growthengine.channels.base import Delivery
from growthengine.channels.providers.audience import hash_email
from growthengine.domain.messages import Message
from growthengine.gate.history import ADDRESS_TRAIT
from growthengine.storage.unit_of_work import Tx

ADDRESS = ADDRESS_TRAIT


class OutboxProvider:
    name = "outbox"

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def row(self, message: Message, traits: dict[str, Any], now_us: int) -> dict[str, Any]:
        """The outbox row for a message (written in bulk by the dispatcher)."""
        payload = {"to": traits.get(ADDRESS.get(self.channel, ""), message.user_id), "title": message.title,
                   "subject": message.subject, "body": message.body, "html": message.html,
                   "image_url": message.image_url, "user_id": message.user_id}
        if self.channel == "ads":
            # An erased user's removal arrives with the hash already made (kept as it is).
            payload = {"audience": message.data.get("audience"), "action": message.data.get("audience_action"),
                       "email_sha256": hash_email(str(traits.get("email", ""))), "user_id": message.user_id}
        unsubscribe = message.data.get("unsubscribe_url")
        if unsubscribe and self.channel == "email":
            payload["headers"] = {"List-Unsubscribe": f"<{unsubscribe}>",
                                  "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        return {"message_id": message.id, "channel": self.channel, "provider": self.name, "payload": payload,
                "created_us": now_us}

    def send(self, tx: Tx, message: Message, traits: dict[str, Any], now_us: int) -> Delivery:
        tx.messages.to_outbox_many([self.row(message, traits, now_us)])
        return Delivery("sent", self.name)

"""In-app messages: placed in the user's inbox, which the app reads when it opens (CONTRACT.md 3.3)."""

from __future__ import annotations

from typing import Any

from growthengine.channels.base import Delivery
from growthengine.domain.messages import Message
from growthengine.storage.unit_of_work import Tx


class InboxProvider:
    channel = "in_app"
    name = "inbox"

    def send(self, tx: Tx, message: Message, traits: dict[str, Any], now_us: int) -> Delivery:
        return Delivery("sent", self.name)  # the ledger row is the inbox entry

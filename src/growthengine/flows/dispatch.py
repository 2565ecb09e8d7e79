"""From a decided message to a delivered one: the gate, then the channel, each outcome on the message."""

from __future__ import annotations

import logging
from typing import Any

from growthengine.channels.base import ChannelProvider
from growthengine.domain.messages import Message
from growthengine.gate.decision import SendGate
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

MESSAGE_TIMER = "message"


class Dispatcher:
    def __init__(self, gate: SendGate, providers: dict[str, ChannelProvider]) -> None:
        self.gate = gate
        self.providers = providers

    def dispatch(self, tx: Tx, message: Message, traits: dict[str, Any], now_us: int, *,
                 holdout_pct: float = 0.0, release: bool = False) -> str:
        """Gate and send one message already in the ledger; returns its new status."""
        decision = self.gate.decide(tx, message, traits, now_us, holdout_pct=holdout_pct, release=release)
        data = dict(message.data)
        if decision.action == "suppress":
            data["gate"] = decision.detail
            tx.messages.update(message.id, status="suppressed", reason=decision.reason, updated_us=now_us, data=data)
            return "suppressed"
        if decision.action == "defer":
            assert decision.at_us is not None
            data["gate"] = decision.detail
            tx.messages.update(message.id, status="scheduled", reason=decision.reason, scheduled_us=decision.at_us,
                               updated_us=now_us, data=data)
            tx.timers.schedule(MESSAGE_TIMER, f"msg:{message.id}", decision.at_us,
                               {"m": message.id, "h": holdout_pct})
            return "scheduled"
        provider = self.providers[message.channel]
        delivery = provider.send(tx, message, traits, now_us)
        data["provider"] = delivery.provider
        if delivery.status == "sent":
            tx.messages.update(message.id, status="sent", sent_us=now_us, updated_us=now_us, data=data)
            return "sent"
        data["error"] = delivery.reason
        tx.messages.update(message.id, status="failed", reason=delivery.reason or "provider_error",
                           updated_us=now_us, data=data)
        log.warning("message %s failed on %s: %s", message.id, delivery.provider, delivery.reason)
        return "failed"

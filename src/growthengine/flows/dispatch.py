"""From decided messages to delivered ones: the gate, then the channel, each outcome on the message.

Messages are handled in batches: one gate pass (a query per frequency cap), one insert into the ledger with
each message's outcome, one insert into the outbox. A batch of 200,000 price-drop pushes costs a handful of
statements, not 200,000 round trips.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from growthengine.channels.base import ChannelProvider
from growthengine.channels.in_app import InboxProvider
from growthengine.channels.outbox import OutboxProvider
from growthengine.channels.providers.bridge import LedgerBridge, MissingAddress, outbound_message
from growthengine.domain.messages import Message
from growthengine.gate.decision import Decision, SendGate
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

MESSAGE_TIMER = "message"


@dataclass
class Outgoing:
    """Messages decided during one pass, waiting to be gated and written together."""

    items: list[tuple[Message, dict[str, Any], float]] = field(default_factory=list)

    def add(self, message: Message, traits: dict[str, Any], holdout_pct: float) -> None:
        self.items.append((message, traits, holdout_pct))


Router = Callable[[Tx, list[tuple[Message, dict[str, Any], float]], int], None]
SentHook = Callable[[Tx, list[Message], int], None]


class Dispatcher:
    def __init__(self, gate: SendGate, providers: dict[str, ChannelProvider], *, router: Router | None = None,
                 on_sent: list[SentHook] | None = None) -> None:
        self.gate = gate
        self.providers = providers
        self.router = router  # may move a message to the channel the user prefers (channel scores)
        self.on_sent: list[SentHook] = list(on_sent or [])

    def flush(self, tx: Tx, outgoing: Outgoing, now_us: int, *, learn: bool = True) -> None:
        """Gate, record and deliver new messages (ids already in the ledger are skipped: never twice).

        ``learn=False``: the sends teach the optimization models nothing (an erased user's audience removals)."""
        if not outgoing.items:
            return
        existing = tx.messages.existing_ids([m.id for m, _, _ in outgoing.items])
        seen: set[str] = set()
        items = []
        for item in outgoing.items:
            if item[0].id not in existing and item[0].id not in seen:
                seen.add(item[0].id)
                items.append(item)
        outgoing.items.clear()
        if self.router is not None:
            self.router(tx, items, now_us)
        # A message booked for the user's best time is decided when that time comes.
        later = [i for i, (m, _, _) in enumerate(items) if m.scheduled_us > now_us]
        now_items = [item for i, item in enumerate(items) if i not in set(later)]
        gated = iter(self.gate.decide_many(tx, now_items, now_us))
        later_set = set(later)
        decisions = [Decision("defer", items[i][0].reason or "send_time", items[i][0].scheduled_us,
                              "booked for the user's best time") if i in later_set else next(gated)
                     for i in range(len(items))]
        outbox_rows: list[dict[str, Any]] = []
        timers: list[tuple[str, str, int, dict[str, Any]]] = []
        deliver_later: list[tuple[Message, dict[str, Any]]] = []
        for (message, traits, holdout), decision in zip(items, decisions, strict=True):
            self._apply(message, decision, now_us)
            if decision.action == "defer":
                assert decision.at_us is not None
                timers.append((MESSAGE_TIMER, f"msg:{message.id}", decision.at_us, {"m": message.id, "h": holdout,
                                                                          "u": message.user_id}))
            elif decision.action == "send":
                provider = self.providers[message.channel]
                if isinstance(provider, OutboxProvider):
                    outbox_rows.append(provider.row(message, traits, now_us))
                    self._sent(message, provider.name, now_us)
                elif isinstance(provider, InboxProvider):
                    self._sent(message, provider.name, now_us)  # the ledger row is the inbox entry
                else:
                    deliver_later.append((message, traits))
        queued = [self._queue(message, traits, now_us) for message, traits in deliver_later]
        tx.messages.add([m for m, _, _ in items])
        tx.messages.to_outbox_many(outbox_rows)
        tx.messages.to_outbox_many([row for row in queued if row is not None], pending=True)
        tx.timers.schedule_many(timers)
        sent = [m for m, _, _ in items if m.status == "sent" or m.data.get("queued")]
        for hook in self.on_sent if learn else ():
            hook(tx, sent, now_us)

    def dispatch(self, tx: Tx, message: Message, traits: dict[str, Any], now_us: int, *,
                 holdout_pct: float = 0.0, release: bool = False) -> str:
        """Gate and send one message already in the ledger (a held message coming due); its new status."""
        decision = self.gate.decide(tx, message, traits, now_us, holdout_pct=holdout_pct, release=release)
        self._apply(message, decision, now_us)
        if decision.action == "defer":
            assert decision.at_us is not None
            tx.timers.schedule(MESSAGE_TIMER, f"msg:{message.id}", decision.at_us,
                               {"m": message.id, "h": holdout_pct, "u": message.user_id})
        elif decision.action == "send":
            provider = self.providers[message.channel]
            if isinstance(provider, OutboxProvider):
                tx.messages.to_outbox_many([provider.row(message, traits, now_us)])
                self._sent(message, provider.name, now_us)
            else:
                row = self._queue(message, traits, now_us)
                if row is not None:
                    tx.messages.to_outbox_many([row], pending=True)
        tx.messages.update(message.id, status=message.status, reason=message.reason,
                           scheduled_us=message.scheduled_us, sent_us=message.sent_us, updated_us=now_us,
                           data=message.data)
        if message.status == "sent":
            for hook in self.on_sent:
                hook(tx, [message], now_us)
        return message.status

    @staticmethod
    def _apply(message: Message, decision: Decision, now_us: int) -> None:
        message.updated_us = now_us
        if decision.reason is not None:
            message.reason = decision.reason
        if decision.detail:
            message.data = {**message.data, "gate": decision.detail}
        if decision.action == "suppress":
            message.status = "suppressed"
        elif decision.action == "defer":
            assert decision.at_us is not None
            message.status = "scheduled"
            message.scheduled_us = decision.at_us

    @staticmethod
    def _sent(message: Message, provider: str, now_us: int) -> None:
        message.status = "sent"
        message.sent_us = now_us
        message.data = {**message.data, "provider": provider}

    def _queue(self, message: Message, traits: dict[str, Any], now_us: int) -> dict[str, Any] | None:
        """A message for a real provider: its outbox row, for the delivery worker to send after the commit.

        It counts as sent for frequency caps from now (``sent_us``); its status says what the provider answered.
        """
        provider = self.providers[message.channel]
        assert isinstance(provider, LedgerBridge)
        try:
            outbound = outbound_message(message, traits)
        except MissingAddress:
            message.status, message.reason = "failed", "no_address"
            return None
        message.sent_us = now_us
        message.data = {**message.data, "provider": provider.name, "queued": True}
        return {"message_id": message.id, "channel": message.channel, "provider": provider.name,
                "payload": dataclasses.asdict(outbound), "created_us": now_us}

"""Delivery feedback (provider webhooks, inbox reads, the app's ``message_opened``) on the send ledger.

Feedback travels through the log like everything else: the webhook route verifies the request, refuses replays and
appends one ``message_feedback`` command per event that moves its message forward, addressed to the message's user;
the flows stage (owner of the user) applies it to the message, and the engagement stage learns from its opens and
clicks (send time, channel scores), so an email opened in a mail client teaches the models as an app open does.

Two rules make a replayed or late webhook harmless:

- **Replays are refused.** Each event's id (``DeliveryEvent.event_id``) is remembered in the transaction that
  accepts it (``webhook_events``, with an expiry in system time); an event whose id is already there is skipped, and
  a request made only of such events raises :class:`WebhookReplayed` (the route answers 409).
- **Status only moves forward** (:func:`outcome`). ``scheduled < sent < delivered < failed < opened < clicked``: an
  engagement event moves a message up, never down (a late ``delivered`` after ``opened`` changes nothing); a failure
  (bounce, drop, complaint) applies only to a message not yet engaged with (``sent`` or ``delivered``, as a late
  bounce may follow a delivery), so an old ``bounce`` never turns an opened or clicked message into ``failed``.
  The route applies the rule to the statuses stored when the request arrives, to answer how many events it took;
  the stage applies it again to the status it finds, which is the one that counts.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from growthengine.channels.providers.base import DeliveryEvent, WebhookRejected
from growthengine.channels.providers.bridge import LedgerBridge
from growthengine.clock import RealClock, to_us
from growthengine.domain.events import Event
from growthengine.domain.messages import PROGRESS, Message
from growthengine.storage.unit_of_work import Tx
from growthengine.storage.webhook_events import WebhookEventStore

log = logging.getLogger(__name__)

FEEDBACK_COMMAND = "message_feedback"
"""A per-user command in the log: feedback on one of the user's messages (see :class:`Feedback`)."""

FAILED = {"bounced": "bounced", "failed": "provider_failed", "complained": "complained"}
# A failure may land on a message at these statuses only: it was handed over and nobody has engaged with it yet.
FAILABLE = frozenset({"scheduled", "sent", "delivered"})
# Where "failed" sits among the progress ranks: above delivered, below opened (an open proves the bounce wrong).
FAILED_RANK = 2.5
# How long an event id is remembered. A signed time bounds how late a replay can come (the signature window is at
# most an hour), so those ids are kept an hour past it; ids of unsigned events (Twilio, most SMS gateways) a week.
SIGNED_KEEP = dt.timedelta(hours=1, minutes=10)
UNSIGNED_KEEP = dt.timedelta(days=7)


class UnknownWebhook(LookupError):
    pass


class WebhookReplayed(Exception):
    """Every event in the request was applied before: a replay (or a retry of a request already taken)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"all {count} event(s) were already received")
        self.count = count


def provider_for(providers: Mapping[str, Any], name: str) -> Any:
    """The configured provider called ``name`` (webhooks name the provider, not the channel)."""
    for provider in providers.values():
        inner = provider.provider if isinstance(provider, LedgerBridge) else provider
        if getattr(inner, "name", None) == name and hasattr(inner, "parse_webhook"):
            return inner
    raise UnknownWebhook(f"no configured provider {name!r} takes webhooks")


def parse(providers: Mapping[str, Any], name: str, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
    provider = provider_for(providers, name)
    events: list[DeliveryEvent] = provider.parse_webhook(headers, body)
    return events


def rank(status: str) -> float:
    """How far along a message is (``failed`` between delivered and opened); -1 for statuses webhooks never move."""
    if status == "failed":
        return FAILED_RANK
    return float(PROGRESS.get(status, -1))


def outcome(current: str, status: str) -> str | None:
    """The message's status after feedback ``status`` when it is at ``current``; None when it changes nothing."""
    if status in FAILED:
        return "failed" if current in FAILABLE else None
    if rank(status) > rank(current) and current in (*PROGRESS, "failed"):
        return status
    return None


@dataclass(frozen=True)
class Feedback:
    """One piece of feedback on one message, as the ``message_feedback`` command carries it."""

    message_id: str
    status: str
    at_us: int
    reason: str | None = None
    raw_type: str = ""

    def payload(self) -> dict[str, Any]:
        return {"message_id": self.message_id, "status": self.status, "at_us": self.at_us, "reason": self.reason,
                "raw_type": self.raw_type}

    @classmethod
    def of_command(cls, command: Event) -> Feedback:
        p = command.properties
        return cls(str(p.get("message_id")), str(p.get("status")), int(p.get("at_us", command.ts_us)),
                   p.get("reason"), str(p.get("raw_type") or ""))


Command = tuple[str, str, int, dict[str, Any]]  # user id, command name, time, payload (StageLog.append_commands)


@dataclass
class Accepted:
    """What a webhook request brings: feedback commands for the log, unsubscribes to ingest, and how many events
    move their message (or its user's consent) forward as of now."""

    commands: list[Command] = field(default_factory=list)
    unsubscribes: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0


def accept_events(tx: Tx, events: list[DeliveryEvent], *,
                  system_now: Callable[[], dt.datetime] = RealClock().now) -> Accepted:
    """Turn verified webhook events into feedback commands (and unsubscribe calls), refusing replays.

    ``system_now`` is real time (the replay memory's expiry). Raises :class:`WebhookReplayed` when every event
    carries an id seen before.
    """
    fresh = _unseen(tx, events, system_now())
    accepted = Accepted()
    found = tx.messages.get_many([e.message_id for e in fresh])
    statuses = {mid: m.status for mid, m in found.items()}
    for event in fresh:
        message = found.get(event.message_id)
        if message is None:
            log.info("webhook event %s for an unknown message %s ignored", event.status, event.message_id)
            continue
        if event.status == "unsubscribed":
            accepted.unsubscribes.append({
                "type": "track", "userId": message.user_id, "event": "unsubscribed",
                "messageId": f"unsub:{message.id}:{message.channel}",
                "properties": {"channel": message.channel, "source": event.provider, "message_id": message.id}})
            accepted.applied += 1
            continue
        after = outcome(statuses[message.id], event.status)
        if after is None:
            log.info("webhook %s for message %s at %s ignored: status only moves forward", event.status,
                     message.id, statuses[message.id])
            continue
        statuses[message.id] = after
        feedback = Feedback(message.id, event.status, to_us(event.at), event.reason, event.raw_type)
        accepted.commands.append((message.user_id, FEEDBACK_COMMAND, feedback.at_us, feedback.payload()))
        accepted.applied += 1
    return accepted


def apply_feedback(tx: Tx, items: list[tuple[str, Feedback]], now_us: int) -> list[tuple[Message, str]]:
    """Apply ``(user id, feedback)`` to the ledger in order (the stage's side); returns each message moved and the
    feedback status that moved it. ``now_us`` is business time, stamped on the messages."""
    found = tx.messages.get_many(list({f.message_id for _, f in items}))
    moved: list[tuple[Message, str]] = []
    for user_id, feedback in items:
        message = found.get(feedback.message_id)
        if message is None or message.user_id != user_id:
            continue
        after = outcome(message.status, feedback.status)
        if after is None:
            continue
        data = dict(message.data, **{f"{feedback.status}_us": feedback.at_us})
        if feedback.raw_type:
            data["provider_event"] = feedback.raw_type
        if after == "failed":
            data["error"] = feedback.reason
            tx.messages.update(message.id, status="failed", reason=FAILED[feedback.status], updated_us=now_us,
                               data=data)
        else:
            extra: dict[str, Any] = {"reason": None} if message.status == "failed" else {}
            tx.messages.update(message.id, status=after, updated_us=now_us, data=data, **extra)
        message.status, message.data = after, data
        moved.append((message, feedback.status))
    return moved


def _unseen(tx: Tx, events: list[DeliveryEvent], now: dt.datetime) -> list[DeliveryEvent]:
    """The events whose ids were not seen before (events without an id always pass), remembering the new ids."""
    if not any(e.event_id for e in events):
        return events
    store = WebhookEventStore(tx.conn, tx.dialect)
    store.purge(to_us(now))
    fresh: list[DeliveryEvent] = []
    replays = 0
    for event in events:
        if event.event_id is None:
            fresh.append(event)
            continue
        until = (max(event.signed_at, now) + SIGNED_KEEP) if event.signed_at is not None else now + UNSIGNED_KEEP
        if store.remember(event.provider, event.event_id, to_us(until)):
            fresh.append(event)
        else:
            replays += 1
            log.info("webhook event %s from %s for message %s was received before: ignored", event.status,
                     event.provider, event.message_id)
    if replays and not fresh:
        raise WebhookReplayed(replays)
    return fresh


__all__ = ["FEEDBACK_COMMAND", "Accepted", "Feedback", "UnknownWebhook", "WebhookRejected", "WebhookReplayed",
           "accept_events", "apply_feedback", "outcome", "parse"]

"""Delivery feedback from provider webhooks: statuses on the send ledger, cleared addresses, unsubscribes.

Two rules make a replayed or late webhook harmless:

- **Replays are refused.** Each event's id (``DeliveryEvent.event_id``) is remembered in the transaction that
  applies it (``webhook_events``, with an expiry in system time); an event whose id is already there is skipped, and
  a request made only of such events raises :class:`WebhookReplayed` (the route answers 409).
- **Status only moves forward.** ``scheduled < sent < delivered < failed < opened < clicked``: an engagement event
  moves a message up, never down (a late ``delivered`` after ``opened`` changes nothing); a failure (bounce, drop,
  complaint) applies only to a message not yet engaged with (``sent`` or ``delivered``, as a late bounce may follow
  a delivery), so an old ``bounce`` never turns an opened or clicked message into ``failed``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from growthengine.channels.providers.base import DeliveryEvent, WebhookRejected
from growthengine.channels.providers.bridge import LedgerBridge
from growthengine.clock import RealClock, to_us
from growthengine.domain.messages import PROGRESS
from growthengine.storage.erasure_store import ERASED_MARK
from growthengine.storage.unit_of_work import Tx
from growthengine.storage.webhook_events import WebhookEventStore

log = logging.getLogger(__name__)

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


def apply_events(tx: Tx, events: list[DeliveryEvent], now_us: int, *,
                 system_now: Callable[[], dt.datetime] = RealClock().now) -> tuple[int, list[dict[str, Any]]]:
    """Record webhook events on their messages; returns how many changed something, and unsubscribes to ingest.

    ``now_us`` is business time (stamped on the messages); ``system_now`` is real time (the replay memory's expiry).
    Raises :class:`WebhookReplayed` when every event carries an id seen before.
    """
    fresh = _unseen(tx, events, system_now())
    applied = 0
    unsubscribes: list[dict[str, Any]] = []
    found = tx.messages.get_many([e.message_id for e in fresh])
    for event in fresh:
        message = found.get(event.message_id)
        if message is None:
            log.info("webhook event %s for an unknown message %s ignored", event.status, event.message_id)
            continue
        data = dict(message.data, **{f"{event.status}_us": to_us(event.at), "provider_event": event.raw_type})
        if event.status == "unsubscribed":
            if message.data.get(ERASED_MARK):
                continue  # its user was erased: there is nobody left to unsubscribe (and nobody to recreate)
            unsubscribes.append({"type": "track", "userId": message.user_id, "event": "unsubscribed",
                                 "messageId": f"unsub:{message.id}:{message.channel}",
                                 "properties": {"channel": message.channel, "source": event.provider,
                                                "message_id": message.id}})
            applied += 1
        elif event.status in FAILED:
            if message.status not in FAILABLE:
                log.info("webhook %s for message %s at %s ignored: status only moves forward", event.status,
                         message.id, message.status)
                continue
            tx.messages.update(message.id, status="failed", reason=FAILED[event.status], updated_us=now_us,
                               data={**data, "error": event.reason})
            message.status = "failed"
            applied += 1
        elif rank(event.status) > rank(message.status) and message.status in (*PROGRESS, "failed"):
            extra: dict[str, Any] = {"reason": None} if message.status == "failed" else {}
            tx.messages.update(message.id, status=event.status, updated_us=now_us, data=data, **extra)
            message.status = event.status
            applied += 1
    return applied, unsubscribes


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


__all__ = ["UnknownWebhook", "WebhookRejected", "WebhookReplayed", "apply_events", "parse"]

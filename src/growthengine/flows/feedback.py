"""Delivery feedback from provider webhooks: statuses on the send ledger, cleared addresses, unsubscribes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from growthengine.channels.providers.base import DeliveryEvent, WebhookRejected
from growthengine.channels.providers.bridge import LedgerBridge
from growthengine.clock import to_us
from growthengine.domain.messages import PROGRESS
from growthengine.storage.unit_of_work import Tx

log = logging.getLogger(__name__)

FAILED = {"bounced": "bounced", "failed": "provider_failed", "complained": "complained"}


class UnknownWebhook(LookupError):
    pass


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


def apply_events(tx: Tx, events: list[DeliveryEvent], now_us: int) -> tuple[int, list[dict[str, Any]]]:
    """Record webhook events on their messages; returns how many applied, and unsubscribes to ingest."""
    applied = 0
    unsubscribes: list[dict[str, Any]] = []
    found = tx.messages.get_many([e.message_id for e in events])
    for event in events:
        message = found.get(event.message_id)
        if message is None:
            log.info("webhook event %s for an unknown message %s ignored", event.status, event.message_id)
            continue
        data = dict(message.data, **{f"{event.status}_us": to_us(event.at), "provider_event": event.raw_type})
        if event.status in FAILED:
            tx.messages.update(message.id, status="failed", reason=FAILED[event.status], updated_us=now_us,
                               data={**data, "error": event.reason})
        elif event.status == "unsubscribed":
            unsubscribes.append({"type": "track", "userId": message.user_id, "event": "unsubscribed",
                                 "messageId": f"unsub:{message.id}:{message.channel}",
                                 "properties": {"channel": message.channel, "source": event.provider,
                                                "message_id": message.id}})
        elif PROGRESS.get(event.status, 0) > PROGRESS.get(message.status, -1):
            tx.messages.update(message.id, status=event.status, updated_us=now_us, data=data)
        applied += 1
    return applied, unsubscribes


__all__ = ["UnknownWebhook", "WebhookRejected", "apply_events", "parse"]

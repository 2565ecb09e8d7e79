"""The delivery worker: hands pending messages to real providers after the send ledger has committed them.

A message bound for a real provider is written to the ledger and to the outbox (``pending``) in the flow's
transaction; only then, outside any transaction, is the provider called, with the message id as its idempotency
key. A crash between the call and the record leaves the row pending; after its lease (or, once the worker that
claimed it has gone silent, sooner) it is sent again with the same id, which the provider (or the device, for push)
folds into one. Transient failures are retried with backoff,
permanent ones are recorded with their reason, and a dead address (an unregistered push token) is cleared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson

from growthengine.channels.providers.base import Delivery, OutboundMessage, Provider
from growthengine.clock import Clock, system_seconds, to_us
from growthengine.domain.messages import PROGRESS
from growthengine.domain.partitions import partition_of
from growthengine.gate.history import ADDRESS_TRAIT
from growthengine.storage.unit_of_work import Store

log = logging.getLogger(__name__)

LEASE_S = 60.0
"""How long a claimed delivery is this worker's (a provider call with its retries fits in it)."""
CLAIMER_SILENT_S = 15.0
"""A worker without a heartbeat this long has gone (the partition leases' time to live): the deliveries it claimed
are taken over without waiting for their lease (``MessageStore.claim_pending``)."""
MAX_ATTEMPTS = 6
BATCH = 20


class DeliveryWorker:
    def __init__(self, store: Store, providers: Mapping[str, Provider], clock: Clock, claimer: str) -> None:
        self.store = store
        self.providers = dict(providers)  # by provider name
        self.clock = clock
        self.work_arrived = threading.Event()  # set when the ledger may hold new messages for real providers
        # Who claims: the worker's id (a leased worker's heartbeat says it is alive; ``Engine.use_ownership``).
        self.claimer = claimer

    def drain(self, *, max_batches: int = 1000) -> int:
        """Deliver what is due now; returns how many deliveries were attempted."""
        if not self.providers:
            return 0
        done = 0
        for _ in range(max_batches):
            now_us = to_us(self.clock.now())
            with self.store.transaction() as tx:
                rows = tx.messages.claim_pending(now_us, system_seconds(), limit=BATCH, lease_s=LEASE_S,
                                                 claimer=self.claimer, silent_s=CLAIMER_SILENT_S)
            if not rows:
                break
            for row in rows:
                # Each outcome is recorded as soon as the provider answers: a crash can then repeat at most the
                # one call in flight (with the same idempotency key, which the provider folds into one).
                started = time.perf_counter()
                delivery, outcome = self._send(row)
                latency_s = time.perf_counter() - started
                with self.store.transaction() as tx:
                    self._record(tx, row, delivery, now_us)
                    tx.messages.record_provider_call(str(row["provider"]), outcome, latency_s, system_seconds())
            done += len(rows)
        return done

    def _send(self, row: dict[str, Any]) -> tuple[Delivery, str]:
        """The provider's answer and its outcome as ``/metrics`` counts it."""
        provider = self.providers.get(row["provider"])
        if provider is None:
            return Delivery("failed", row["provider"], reason="provider not configured", permanent=True), "error"
        try:
            delivery = provider.send(OutboundMessage(**row["payload"]))
        except Exception as exc:
            log.exception("provider %s raised on message %s", row["provider"], row["message_id"])
            return Delivery("failed", row["provider"], reason=f"{type(exc).__name__}", permanent=False), "error"
        if delivery.status == "sent":
            return delivery, "sent"
        return delivery, "failed_permanent" if delivery.permanent else "failed_transient"

    @staticmethod
    def _record(tx: Any, row: dict[str, Any], delivery: Delivery, now_us: int) -> None:
        message = tx.messages.get(row["message_id"])
        if message is None:
            tx.messages.settle(row["id"], "failed")
            return
        data = dict(message.data, provider=delivery.provider)
        if delivery.status == "sent":
            tx.messages.settle(row["id"], "done")
            data["provider_id"] = delivery.provider_id
            # Status only moves forward: a provider's webhook ("delivered") may have been recorded first.
            ahead = PROGRESS.get(message.status, -1) >= PROGRESS["sent"]
            tx.messages.update(message.id, **({} if ahead else {"status": "sent"}), updated_us=now_us, data=data)
            return
        data["error"] = delivery.reason
        attempts = int(row["attempts"]) + 1
        if not delivery.permanent and attempts < MAX_ATTEMPTS:
            backoff_s = min(2 ** attempts, 600)  # system time: a retry waits for real, whatever the test clock
            tx.messages.settle(row["id"], "pending", system_seconds() + backoff_s)
            tx.messages.update(message.id, updated_us=now_us, data=data)
            return
        tx.messages.settle(row["id"], "failed")
        tx.messages.update(message.id, status="failed", reason=delivery.reason or "provider_error", sent_us=None,
                           updated_us=now_us, data=data)
        if delivery.unsubscribed:
            # The recipient opted out at the provider (an SMS STOP, Twilio 21610): an ``unsubscribed`` event in the
            # log, as the user's own would be, so consent for that channel goes off and the audit records it.
            tx.events.append([{
                "message_id": f"provider-unsubscribe:{message.id}", "type": "track", "name": "unsubscribed",
                "user_id": message.user_id, "anonymous_id": None, "ts_us": now_us, "received_us": now_us,
                "payload": orjson.dumps({"channel": message.channel, "source": "provider",
                                         "message_id": message.id}).decode(),
                "extra": None, "partition": partition_of(message.user_id)}])
            profile = tx.profiles.get(message.user_id)
            if profile is not None:
                profile.apply_traits({"consent": {message.channel: False}}, now_us)
                profile.updated_us = now_us
                tx.profiles.save_many([profile])
            log.info("user %s unsubscribed from %s at the provider (message %s)", message.user_id,
                     message.channel, message.id)
            return
        if delivery.invalid_address and message.channel in ADDRESS_TRAIT:
            profile = tx.profiles.get(message.user_id)
            if profile is not None:
                profile.traits.pop(ADDRESS_TRAIT[message.channel], None)
                profile.updated_us = now_us
                tx.profiles.save_many([profile])
                log.info("cleared a dead %s address of user %s (message %s)", message.channel, message.user_id,
                         message.id)

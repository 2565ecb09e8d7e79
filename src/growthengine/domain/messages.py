"""A message: one send to one user on one channel, from its decision to its delivery feedback."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("scheduled", "sent", "delivered", "opened", "clicked", "suppressed", "failed", "cancelled")
# How far along a message is: feedback never moves a message backwards (a late 'delivered' after 'opened').
PROGRESS = {"scheduled": 0, "sent": 1, "delivered": 2, "opened": 3, "clicked": 4}


def message_id(*parts: object) -> str:
    """The deterministic id of a message: the same parts (a broadcast and its user, an audience change) give the
    same id."""
    raw = "|".join(str(p) for p in parts)
    return "msg_" + hashlib.sha1(raw.encode("utf-8"), usedforsecurity=False).hexdigest()[:24]


def step_message_id(flow: str, user_id: str, entity: str | None, run_id: int | None, step: str) -> str:
    """The deterministic id of a flow step's message: the same flow, user, trigger entity, run and step give the
    same id.

    It starts with the run's id (12 hex digits, so ids sort as their runs do), then the hash: a batch's new ledger,
    outbox and KPI rows then go to the right-hand end of their message-id indexes instead of one random page each.
    A price drop's 200,000 messages written with hashed ids alone dirtied nearly every leaf page of three such
    indexes in every batch (``benchmarks/README.md``, "Price drop: message ids in run order")."""
    digest = message_id(flow, user_id, entity, run_id, step)[4:24]  # 20 hex digits of the same hash, after "msg_"
    return f"msg_{run_id or 0:012x}{digest}"


@dataclass(slots=True)
class Message:
    id: str
    user_id: str
    flow: str
    step: str
    channel: str
    kind: str
    status: str
    scheduled_us: int
    updated_us: int
    body: str
    run_id: int | None = None
    reason: str | None = None
    priority: int = 50
    sent_us: int | None = None
    expires_us: int | None = None
    title: str | None = None
    subject: str | None = None
    html: str | None = None
    image_url: str | None = None
    variant: str | None = None
    coupon: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None

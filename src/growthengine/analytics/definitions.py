"""The KPI definitions (SPEC.md 6), and what one message counts as under them.

Every KPI is a ratio of message counts. A message counts on **one local calendar day** (business timezone): the day
it went out (``sentAt``) if it went out, else the day of its ``scheduledAt`` (when it was decided, or when a held
message is due). It is counted under its flow, step, channel, variant (``""`` when none) and kind.

Counts (each message is in each count at most once):

* **decided**: every message the flows wrote to the send ledger, whatever became of it.
* **sent** ("went out"): status ``sent``, ``delivered``, ``opened`` or ``clicked`` (the provider accepted it).
* **delivered**: ``delivered``, ``opened`` or ``clicked``; **opened**: ``opened`` or ``clicked`` (a click implies an
  open); **clicked**: ``clicked``.
* **failed**: the provider refused it; **suppressed**: a guardrail stopped it (with its rule in ``reason``);
  **scheduled**: held (quiet hours) or not yet due; **cancelled**: its run ended before it went.
* **control**: suppressed with reason ``holdout`` (the control group: it would have gone, and was held back on
  purpose). The **treated** group is the messages that went out.
* **converted**: a treated or control message followed by a ``purchase`` by its user within the attribution
  window: at or after its anchor and before anchor + ``attribution_days`` days (default 3). The anchor of a
  treated message is when it went out (``sentAt``); of a control message, its ``scheduledAt`` (the instant it
  would have gone). Every message in the window gets the credit (any-touch attribution), in the treated and the
  control group alike, so the two stay comparable.
* **unsubscribed**: a treated message followed, within the same window, by an ``unsubscribed`` event of its user
  for its channel (or for all channels: no ``channel``, or ``"all"``).

Rates (``None`` when the denominator is 0):

* **delivery rate** = sent / (sent + failed): of the messages the engine tried to hand to a provider, the share that
  went out. Suppressed (a guardrail's decision, not a delivery failure), held and cancelled messages are not tries.
* **open rate** = opened / sent over push and email messages only (the spec's "Email/Push"); per channel too.
* **CTR** = clicked / sent (all channels).
* **conversion rate** = converted / sent (the treated group).
* **control conversion rate** = control_converted / control.
* **uplift** = conversion rate - control conversion rate, with a 95 % Newcombe hybrid-score interval (Wilson
  intervals of each proportion combined, Newcombe 1998, method 10); only where a control group exists.
* **unsubscribe rate** = unsubscribed / sent.

Benchmarks (SPEC.md 6): delivery > 98 %, push open > 5 %, email open > 20 %, CTR > 2 % (the low end of 2-3 %),
conversion > 1.5 %, uplift > 0, unsubscribe < 0.5 %.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from growthengine.clock import from_us

CONVERSION_EVENT = "purchase"
UNSUBSCRIBE_EVENT = "unsubscribed"
WENT_OUT = frozenset({"sent", "delivered", "opened", "clicked"})
DELIVERED = frozenset({"delivered", "opened", "clicked"})
OPENED = frozenset({"opened", "clicked"})
OPEN_CHANNELS = ("push", "email")
HOLDOUT = "holdout"
DAY_US = 86_400_000_000

TREATED = "t"
CONTROL = "c"


@dataclass(frozen=True, slots=True)
class KpiConfig:
    """What the rollups were computed with; a change means a rebuild."""

    attribution_days: int = 3
    timezone: str = "Asia/Bangkok"

    @property
    def window_us(self) -> int:
        return self.attribution_days * DAY_US

    def as_dict(self) -> dict[str, Any]:
        return {"attribution_days": self.attribution_days, "timezone": self.timezone}

    @classmethod
    def from_dict(cls, value: Any) -> KpiConfig:
        if not isinstance(value, dict):
            return cls()
        return cls(int(value.get("attribution_days", 3)), str(value.get("timezone", "Asia/Bangkok")))


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What one message counts as: the row of ``kpi_messages``."""

    message_id: str
    user_id: str
    day: str
    flow: str
    step: str
    channel: str
    variant: str
    kind: str
    status: str
    reason: str
    group: str  # TREATED, CONTROL or ""
    anchor_us: int | None
    converted: bool = False
    unsubscribed: bool = False
    open_how: int | None = None

    @property
    def daily_key(self) -> tuple[str, str, str, str, str, str]:
        return (self.day, self.flow, self.step, self.channel, self.variant, self.kind)

    def with_attribution(self, converted: bool, unsubscribed: bool) -> MessageFacts:
        return replace(self, converted=converted, unsubscribed=unsubscribed)


def local_day(at_us: int, zone: ZoneInfo) -> str:
    return from_us(at_us).astimezone(zone).date().isoformat()


def hour_of_week(at_us: int, zone: ZoneInfo) -> int:
    """0 = Monday 00:00-00:59 local ... 167 = Sunday 23:00-23:59."""
    local = from_us(at_us).astimezone(zone)
    return local.weekday() * 24 + local.hour


def facts_of(row: Any, zone: ZoneInfo) -> MessageFacts:
    """What a message row (of the ``messages`` table, as a mapping) counts as, attribution not yet known."""
    status = str(row["status"])
    sent_us = row["sent_us"]
    went_out = status in WENT_OUT
    at_us = sent_us if went_out and sent_us is not None else row["scheduled_us"]
    reason = row["reason"] or ""
    if went_out:
        group, anchor = TREATED, at_us
    elif status == "suppressed" and reason == HOLDOUT:
        group, anchor = CONTROL, row["scheduled_us"]
    else:
        group, anchor = "", None
    open_how = None
    if status in OPENED:
        data = row["data"]
        if isinstance(data, str):
            data = orjson.loads(data)
        opened_at = _int(data.get("opened_us")) or _int(data.get("clicked_us")) or int(row["updated_us"])
        open_how = hour_of_week(opened_at, zone)
    return MessageFacts(
        message_id=str(row["id"]), user_id=str(row["user_id"]), day=local_day(int(at_us), zone),
        flow=str(row["flow_key"]), step=str(row["step"]), channel=str(row["channel"]),
        variant=str(row["variant"] or ""), kind=str(row["kind"]), status=status, reason=reason, group=group,
        anchor_us=int(anchor) if anchor is not None else None, open_how=open_how,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def daily_counts(facts: MessageFacts) -> dict[str, int]:
    """The ``kpi_daily`` counters this message adds to its (day, flow, step, channel, variant, kind)."""
    status = facts.status
    counts = {"decided": 1}
    if status in WENT_OUT:
        counts["sent"] = 1
    if status in DELIVERED:
        counts["delivered"] = 1
    if status in OPENED:
        counts["opened"] = 1
    if status in ("clicked", "failed", "suppressed", "scheduled", "cancelled"):
        counts[status] = 1
    if facts.group == TREATED:
        counts["converted"] = int(facts.converted)
        counts["unsubscribed"] = int(facts.unsubscribed)
    elif facts.group == CONTROL:
        counts["control"] = 1
        counts["control_converted"] = int(facts.converted)
    return counts


def reason_key(facts: MessageFacts) -> tuple[str, str, str, str, str, str] | None:
    """The ``kpi_reasons`` bucket of a message that carries a reason (held, moved, suppressed, failed...)."""
    if not facts.reason:
        return None
    return (facts.day, facts.flow, facts.step, facts.channel, facts.status, facts.reason)


def open_key(facts: MessageFacts) -> tuple[str, str, int] | None:
    if facts.open_how is None:
        return None
    return (facts.flow, facts.channel, facts.open_how)


def in_window(anchor_us: int, event_us: int, window_us: int) -> bool:
    """An event is attributed to a message when ``anchor <= event < anchor + window``."""
    return anchor_us <= event_us < anchor_us + window_us


def unsubscribe_covers(properties: dict[str, Any], channel: str) -> bool:
    """An ``unsubscribed`` event for this channel, or for every channel."""
    target = properties.get("channel")
    return target in (None, "all", "") or target == channel


def zone(config: KpiConfig) -> ZoneInfo:
    return ZoneInfo(config.timezone)


def day_range(start: dt.date, end: dt.date) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]

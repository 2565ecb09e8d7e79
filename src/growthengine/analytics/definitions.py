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
* **converted**: a treated or control message credited with at least one ``purchase`` of its user. Each purchase
  is credited to ONE message (last touch): of the user's treated and control messages whose attribution window holds
  it (at or after the message's anchor and before anchor + ``attribution_days`` days, default 3), the one with the
  latest anchor (ties: the larger message id). The anchor of a treated message is when it went out (``sentAt``); of
  a control message, its ``scheduledAt`` (the instant it would have gone). **purchases** counts the purchases credited
  to treated messages and **revenue** (GMV) their ``amount``; ``control_revenue`` the same for control messages.
* **unsubscribed**: a treated message credited with an ``unsubscribed`` event of its user, last touch in the same
  way, among the treated messages on a channel the event covers (its ``channel``, or every channel: no ``channel``
  or ``"all"``).

A message's **delivered** and **opened** are separate facts: delivered means it reached the device or inbox (the
provider or the in-app inbox said ``delivered``), and an opened (or clicked) message counts as delivered too, since
an open proves the arrival even when the provider never reported it (push through FCM, the local outbox). So
opened <= delivered <= sent, and delivered == opened only when nothing reports deliveries.

Rates (``None`` when the denominator is 0):

* **delivery rate** = sent / (sent + failed): of the messages the engine tried to hand to a provider, the share the
  provider accepted (SPEC.md 6: "successfully sent"). Suppressed (a guardrail's decision, not a delivery failure),
  held and cancelled messages are not tries.
* **confirmed delivery rate** = delivered / sent: of the messages that went out, the share known to have arrived.
* **open rate** = opened / sent over push and email messages only (the spec's "Email/Push"); per channel too.
* **CTR** = clicked / sent (all channels).
* **conversion rate** = converted / sent (the treated group).
* **control conversion rate** = control_converted / control.
* **uplift** = conversion rate - control conversion rate, with a 95 % Newcombe hybrid-score interval (Wilson
  intervals of each proportion combined, Newcombe 1998, method 10); only where a control group exists.
* **unsubscribe rate** = unsubscribed / sent.
* **revenue per message** = revenue / sent; **revenue uplift** = that minus control_revenue / control, with a 95 %
  Welch interval from the per-message revenue's mean and variance in each group.

Benchmarks (SPEC.md 6): delivery > 98 %, push open > 5 %, email open > 20 %, CTR > 2 % (the low end of 2-3 %),
conversion > 1.5 %, uplift > 0, unsubscribe < 0.5 %.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from growthengine.clock import from_us

CONVERSION_EVENT = "purchase"
UNSUBSCRIBE_EVENT = "unsubscribed"
WENT_OUT = frozenset({"sent", "delivered", "opened", "clicked"})
DELIVERED = frozenset({"delivered", "opened", "clicked"})
OPENED = frozenset({"opened", "clicked"})
OPEN_CHANNELS = ("push", "email")
HOLDOUT = "holdout"
DAY_US = 86_400_000_000

ROLLUP_VERSION = 2
"""Version 2: rollups from ``message_events``, last-touch attribution, revenue. A stored config of another version
means a rebuild."""

TREATED = "t"
CONTROL = "c"


@dataclass(frozen=True, slots=True)
class KpiConfig:
    """What the rollups were computed with; a change means a rebuild."""

    attribution_days: int = 3
    timezone: str = "Asia/Bangkok"
    version: int = ROLLUP_VERSION

    @property
    def window_us(self) -> int:
        return self.attribution_days * DAY_US

    def as_dict(self) -> dict[str, Any]:
        return {"attribution_days": self.attribution_days, "timezone": self.timezone, "version": self.version}

    @classmethod
    def from_dict(cls, value: Any) -> KpiConfig:
        if not isinstance(value, dict):
            return cls()
        return cls(int(value.get("attribution_days", 3)), str(value.get("timezone", "Asia/Bangkok")),
                   int(value.get("version", 1)))


def local_day(at_us: int, zone: ZoneInfo) -> str:
    return from_us(at_us).astimezone(zone).date().isoformat()


def hour_of_week(at_us: int, zone: ZoneInfo) -> int:
    """0 = Monday 00:00-00:59 local ... 167 = Sunday 23:00-23:59."""
    local = from_us(at_us).astimezone(zone)
    return local.weekday() * 24 + local.hour


def zone(config: KpiConfig) -> ZoneInfo:
    return ZoneInfo(config.timezone)


def day_range(start: dt.date, end: dt.date) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate, defined once: the sum of ``numerator`` counters over the sum of ``denominator`` ones (``None`` when
    that is 0), and what it means in Thai and English (shown beside it wherever it is shown)."""

    name: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    th: str
    en: str

    def of(self, counts: dict[str, Any]) -> float | None:
        below = sum(float(counts.get(c, 0) or 0) for c in self.denominator)
        return sum(float(counts.get(c, 0) or 0) for c in self.numerator) / below if below else None


RATES: tuple[Rate, ...] = (
    Rate("delivery_rate", ("sent",), ("sent", "failed"),
         "ส่งออก ÷ (ส่งออก + ล้มเหลว): สัดส่วนข้อความที่ผู้ให้บริการรับไปส่ง จากที่ระบบพยายามส่ง "
         "(ข้อความที่ถูกระงับ เลื่อน หรือยกเลิกไม่นับ)",
         "sent ÷ (sent + failed): of the messages handed to a provider, the share it accepted (suppressed, held "
         "and cancelled messages are not tries)"),
    Rate("confirmed_delivery_rate", ("delivered",), ("sent",),
         "ถึงผู้รับ ÷ ส่งออก: สัดส่วนที่ยืนยันว่าถึงเครื่องหรือกล่องข้อความแล้ว (การเปิดก็ยืนยันการถึง)",
         "delivered ÷ sent: of the messages that went out, the share known to have reached the device or inbox "
         "(an open proves it too)"),
    Rate("open_rate", ("push_opened", "email_opened"), ("push_sent", "email_sent"),
         "เปิด ÷ ส่งออก เฉพาะพุชและอีเมล", "opened ÷ sent, push and email only"),
    Rate("push_open_rate", ("push_opened",), ("push_sent",), "เปิด ÷ ส่งออก ของพุช", "opened ÷ sent, push"),
    Rate("email_open_rate", ("email_opened",), ("email_sent",), "เปิด ÷ ส่งออก ของอีเมล", "opened ÷ sent, email"),
    Rate("ctr", ("clicked",), ("sent",), "คลิก ÷ ส่งออก (ทุกช่องทาง)", "clicked ÷ sent (all channels)"),
    Rate("conversion_rate", ("converted",), ("sent",),
         "ข้อความที่ได้เครดิตการซื้อ ÷ ส่งออก: การซื้อแต่ละครั้งนับให้ข้อความเดียว คือข้อความล่าสุดที่ส่งก่อนซื้อ"
         "ภายในช่วงเวลานับการซื้อ (last touch)",
         "messages credited with a purchase ÷ sent: each purchase is credited to ONE message, the last one sent "
         "before it within the attribution window (last touch)"),
    Rate("control_conversion_rate", ("control_converted",), ("control",),
         "กลุ่มควบคุมที่ได้เครดิตการซื้อ ÷ กลุ่มควบคุม (ข้อความที่ตั้งใจไม่ส่ง)",
         "control messages credited with a purchase ÷ control messages (held back on purpose)"),
    Rate("unsubscribe_rate", ("unsubscribed",), ("sent",),
         "ยกเลิกรับ ÷ ส่งออก: การยกเลิกแต่ละครั้งนับให้ข้อความล่าสุดในช่องทางนั้นภายในช่วงเวลาเดียวกัน",
         "unsubscribed ÷ sent: each opt-out credited to the last message on its channel within the window"),
    Rate("revenue_per_message", ("revenue",), ("sent",),
         "ยอดขาย (GMV) ที่นับให้ข้อความ ÷ ส่งออก", "attributed revenue (GMV) ÷ sent"),
)
RATE = {rate.name: rate for rate in RATES}

EXPLAINED: dict[str, tuple[str, str]] = {
    # Figures that are not rates, explained where they are shown (Thai, English).
    "uplift": ("อัตราการซื้อของกลุ่มที่ได้รับ − ของกลุ่มควบคุม พร้อมช่วงความเชื่อมั่น 95% (Newcombe)",
               "conversion rate − control conversion rate, with its 95 % interval (Newcombe)"),
    "revenue_uplift": ("ยอดขายต่อข้อความของกลุ่มที่ได้รับ − ของกลุ่มควบคุม พร้อมช่วง 95% (Welch)",
                       "revenue per message sent − per control message, with its 95 % interval (Welch)"),
    "delivered": ("ถึงเครื่องหรือกล่องข้อความ (ผู้ให้บริการหรือกล่องข้อความแจ้ง) หรือถูกเปิดแล้ว",
                  "reached the device or inbox (the provider or the inbox said so), or was opened"),
    "opened": ("ถูกเปิดหรือคลิก (นับรวมในถึงผู้รับด้วย)", "opened or clicked (counted as delivered too)"),
    "scheduled_now": ("ข้อความที่รอส่งหรือถูกเลื่อนอยู่ตอนนี้ (ไม่ขึ้นกับช่วงวันที่) ตรงกับ /v1/messages?status=scheduled",
                      "messages waiting or held right now (whatever the dates), as /v1/messages?status=scheduled "
                      "lists them"),
    "converted": ("ข้อความที่ได้เครดิตการซื้ออย่างน้อยหนึ่งครั้ง (last touch)",
                  "messages credited with at least one purchase (last touch)"),
    "revenue": ("ยอดขาย (GMV) จากการซื้อที่นับให้ข้อความที่ส่งออก (last touch)",
                "revenue (GMV) of the purchases credited to messages that went out (last touch)"),
}


def definitions(lang: str) -> dict[str, str]:
    """Every rate's and figure's definition in a language (``th`` or ``en``)."""
    english = lang == "en"
    out = {rate.name: rate.en if english else rate.th for rate in RATES}
    out.update({name: pair[1] if english else pair[0] for name, pair in EXPLAINED.items()})
    return out

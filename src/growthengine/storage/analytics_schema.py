"""Tables of the analytics box: KPI rollups computed per batch from ``message_events`` and the event log.

* ``kpi_messages``: what each message currently counts as (its day, dimensions, status, treated or control group,
  attribution anchor and whether a purchase or an unsubscribe was attributed to it). It is the memory that makes
  the rollups incremental and exact: a change is applied as "minus what the message counted as, plus what it
  counts as now", each purchase credited to one message (last touch) with its amount.
* ``kpi_daily``: counters per local day, flow, step, channel, variant and kind; ``kpi_monthly`` the same per
  calendar month (a year's report reads 12 months and the days at its edges, not 365 days); ``kpi_flow_days`` per
  day and flow only (the "by day" series). Pages and ``GET /v1/kpis`` read only these, never the messages or the
  events.
* ``kpi_reasons`` (and ``kpi_reasons_monthly``): messages per day (month), flow, step, channel, status and reason
  (held, moved, suppressed, failed, cancelled, and by which rule).
* ``kpi_open_hours``: opens per flow, channel and local hour of the week (0 = Monday 00:00-00:59).
* ``kpi_current``: messages by flow, step, channel, status and reason as they stand now, whatever their day (the
  "scheduled / held" figure equals what ``GET /v1/messages?status=scheduled`` lists).
* ``kpi_credits``: each purchase and unsubscribe and the one message it is credited to (the last touch).
* ``kpi_calendar``: the local day and hour of the week of each 15-minute bucket of time (every time zone's offset is
  a multiple of 15 minutes), so that the rollup SQL needs no time-zone functions on either database.
* ``segment_size_history``: segment sizes, one snapshot per local day (the latest of the day wins).
"""

from __future__ import annotations

import sqlalchemy as sa

from growthengine.storage.flow_schema import messages
from growthengine.storage.schema import metadata

KPI_COUNTERS = (
    "decided", "scheduled", "sent", "delivered", "opened", "clicked", "failed", "suppressed", "cancelled",
    "control", "converted", "control_converted", "unsubscribed", "purchases",
)
# Attributed revenue (GMV) and the sum of each message's revenue squared (for the uplift's interval).
REVENUE_SUMS = ("revenue", "revenue_sq", "control_revenue", "control_revenue_sq")
# Open rates are per channel (push, email): the per-day table keeps their sends and opens besides the totals.
CHANNEL_COUNTERS = ("push_sent", "push_opened", "email_sent", "email_opened")
KPI_DIMENSIONS = ("day", "flow_key", "step", "channel", "variant", "kind")
REASON_DIMENSIONS = ("day", "flow_key", "step", "channel", "status", "reason")


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def _sum(name: str) -> sa.Column[float]:
    return sa.Column(name, sa.Float, nullable=False, server_default="0")


kpi_messages = sa.Table(
    "kpi_messages",
    metadata,
    sa.Column("message_id", sa.String(40), nullable=False),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("flow_key", sa.String(100), nullable=False),
    sa.Column("step", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("variant", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("grp", sa.String(1), nullable=False),  # "t" treated (went out), "c" control (holdout), "" neither
    sa.Column("anchor_us", sa.BigInteger, nullable=True),
    sa.Column("converted", sa.Boolean, nullable=False),
    sa.Column("unsubscribed", sa.Boolean, nullable=False),
    sa.Column("open_how", sa.SmallInteger, nullable=True),
    sa.Column("purchases", sa.Integer, nullable=False, server_default="0"),
    sa.Column("revenue", sa.Float, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("user_id", "message_id", name="kpi_messages_pkey"),
    sa.Index("ix_kpi_messages_user_anchor", "user_id", "anchor_us"),
)

kpi_daily = sa.Table(
    "kpi_daily",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("flow_key", sa.String(100), primary_key=True),
    sa.Column("step", sa.String(100), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("variant", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    *[_counter(name) for name in KPI_COUNTERS],
    *[_sum(name) for name in REVENUE_SUMS],
    sa.Index("ix_kpi_daily_flow_day", "flow_key", "day"),
)

kpi_monthly = sa.Table(
    "kpi_monthly",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("flow_key", sa.String(100), primary_key=True),
    sa.Column("step", sa.String(100), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("variant", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    *[_counter(name) for name in KPI_COUNTERS],
    *[_sum(name) for name in REVENUE_SUMS],
)

kpi_flow_days = sa.Table(
    "kpi_flow_days",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("flow_key", sa.String(100), primary_key=True),
    *[_counter(name) for name in KPI_COUNTERS],
    *[_counter(name) for name in CHANNEL_COUNTERS],
    *[_sum(name) for name in REVENUE_SUMS],
)

kpi_reasons = sa.Table(
    "kpi_reasons",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("flow_key", sa.String(100), primary_key=True),
    sa.Column("step", sa.String(100), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    _counter("n"),
)

kpi_reasons_monthly = sa.Table(
    "kpi_reasons_monthly",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("flow_key", sa.String(100), primary_key=True),
    sa.Column("step", sa.String(100), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    _counter("n"),
)

kpi_open_hours = sa.Table(
    "kpi_open_hours",
    metadata,
    sa.Column("flow_key", sa.String(100), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("how", sa.SmallInteger, primary_key=True),
    _counter("n"),
)

kpi_current = sa.Table(
    "kpi_current",
    metadata,
    sa.Column("flow_key", sa.String(100), primary_key=True),
    sa.Column("step", sa.String(100), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    _counter("n"),
)

kpi_credits = sa.Table(
    "kpi_credits",
    metadata,
    sa.Column("user_id", sa.String(300), primary_key=True),
    sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),  # the purchase or unsubscribe
    sa.Column("kind", sa.String(1), nullable=False),  # "p" purchase, "u" unsubscribe
    sa.Column("message_id", sa.String(40), nullable=False),  # the one message it is credited to (last touch)
    sa.Column("amount", sa.Float, nullable=False),
    sa.Index("ix_kpi_credits_message", "message_id"),
)

kpi_calendar = sa.Table(
    "kpi_calendar",
    metadata,
    sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),  # floor(us / 15 minutes)
    sa.Column("day", sa.String(10), nullable=False),  # the local day (business timezone)
    sa.Column("how", sa.SmallInteger, nullable=False),  # the local hour of the week, 0 = Monday 00:00-00:59
)

segment_size_history = sa.Table(
    "segment_size_history",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("segment_key", sa.String(100), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("taken_us", sa.BigInteger, nullable=False),
)

# The message explorer filters the send ledger by status or channel, newest first: indexes so that a rare
# status (failed, suppressed) is found without walking the whole ledger.
ix_messages_status_seq = sa.Index("ix_messages_status_seq", messages.c.status, messages.c.seq)
ix_messages_channel_seq = sa.Index("ix_messages_channel_seq", messages.c.channel, messages.c.seq)

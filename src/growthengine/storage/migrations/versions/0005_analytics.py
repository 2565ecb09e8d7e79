"""Analytics: KPI rollups (kpi_messages, kpi_daily, kpi_monthly, kpi_flow_days, kpi_reasons, kpi_reasons_monthly,
kpi_open_hours), segment size history, and two indexes on the send ledger for the message explorer.

The rollups of messages already in the ledger are filled in by the engine at its next start (a KPI rebuild
runs whenever the stored KPI settings differ from the engine's, and the first start has none stored).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COUNTERS = (
    "decided", "scheduled", "sent", "delivered", "opened", "clicked", "failed", "suppressed", "cancelled",
    "control", "converted", "control_converted", "unsubscribed",
)


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "kpi_messages",
        sa.Column("message_id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("flow_key", sa.String(100), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("variant", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("grp", sa.String(1), nullable=False),
        sa.Column("anchor_us", sa.BigInteger, nullable=True),
        sa.Column("converted", sa.Boolean, nullable=False),
        sa.Column("unsubscribed", sa.Boolean, nullable=False),
        sa.Column("open_how", sa.SmallInteger, nullable=True),
    )
    op.create_index("ix_kpi_messages_user_anchor", "kpi_messages", ["user_id", "anchor_us"])
    op.create_table(
        "kpi_daily",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("flow_key", sa.String(100), primary_key=True),
        sa.Column("step", sa.String(100), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("variant", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        *[_counter(name) for name in COUNTERS],
    )
    op.create_index("ix_kpi_daily_flow_day", "kpi_daily", ["flow_key", "day"])
    op.create_table(
        "kpi_monthly",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("flow_key", sa.String(100), primary_key=True),
        sa.Column("step", sa.String(100), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("variant", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        *[_counter(name) for name in COUNTERS],
    )
    op.create_table(
        "kpi_flow_days",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("flow_key", sa.String(100), primary_key=True),
        *[_counter(name) for name in (*COUNTERS, "push_sent", "push_opened", "email_sent", "email_opened")],
    )
    op.create_table(
        "kpi_reasons",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("flow_key", sa.String(100), primary_key=True),
        sa.Column("step", sa.String(100), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("reason", sa.String(64), primary_key=True),
        _counter("n"),
    )
    op.create_table(
        "kpi_reasons_monthly",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("flow_key", sa.String(100), primary_key=True),
        sa.Column("step", sa.String(100), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("reason", sa.String(64), primary_key=True),
        _counter("n"),
    )
    op.create_table(
        "kpi_open_hours",
        sa.Column("flow_key", sa.String(100), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("how", sa.SmallInteger, primary_key=True),
        _counter("n"),
    )
    op.create_table(
        "segment_size_history",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("segment_key", sa.String(100), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("taken_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_messages_status_seq", "messages", ["status", "seq"])
    op.create_index("ix_messages_channel_seq", "messages", ["channel", "seq"])


def downgrade() -> None:
    op.drop_index("ix_messages_channel_seq", "messages")
    op.drop_index("ix_messages_status_seq", "messages")
    for table in ("segment_size_history", "kpi_open_hours", "kpi_reasons_monthly", "kpi_reasons", "kpi_flow_days",
                  "kpi_monthly", "kpi_daily", "kpi_messages"):
        op.drop_table(table)

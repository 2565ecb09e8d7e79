"""KPIs from an insert-only message-event table: ``message_events`` (one row per change of a message: its state
after the change), ``kpi_calendar`` (local day and hour of the week per 15 minutes, so that rollup SQL needs no
time-zone functions), ``kpi_current`` (messages by their status now), and the attributed purchases and revenue
(GMV) in the rollups. Every message already in the ledger gets one event (its state now); the engine rebuilds the
rollups from them at its next start (the stored KPI settings carry a rollup version).

Revision ID: 0014
Revises: 0013
"""

import json
import zlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ROLLUPS = ("kpi_daily", "kpi_monthly", "kpi_flow_days")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "message_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("partition", sa.SmallInteger, nullable=False),
        sa.Column("flow_key", sa.String(100), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("variant", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("scheduled_us", sa.BigInteger, nullable=False),
        sa.Column("sent_us", sa.BigInteger, nullable=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("opened_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_message_events_user", "message_events", ["user_id", "message_id", "id"])
    if postgres:
        op.execute("ALTER TABLE message_events ADD COLUMN txid BIGINT NOT NULL "
                   "DEFAULT (pg_current_xact_id()::text::bigint)")
        op.create_index("ix_message_events_txid", "message_events", ["txid", "id"])
    op.create_table(
        "kpi_calendar",
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("how", sa.SmallInteger, nullable=False),
    )
    op.create_table(
        "kpi_credits",
        sa.Column("user_id", sa.String(300), primary_key=True),
        sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
    )
    op.create_index("ix_kpi_credits_message", "kpi_credits", ["message_id"])
    op.create_table(
        "kpi_current",
        sa.Column("flow_key", sa.String(100), primary_key=True),
        sa.Column("step", sa.String(100), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("reason", sa.String(64), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False, server_default="0"),
    )
    with op.batch_alter_table("kpi_messages") as batch:
        batch.add_column(sa.Column("purchases", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("revenue", sa.Float, nullable=False, server_default="0"))
    for table in ROLLUPS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("purchases", sa.BigInteger, nullable=False, server_default="0"))
            batch.add_column(sa.Column("revenue", sa.Float, nullable=False, server_default="0"))
            for name in ("revenue_sq", "control_revenue", "control_revenue_sq"):
                batch.add_column(sa.Column(name, sa.Float, nullable=False, server_default="0"))
    # The ledger as it stands: one event per message, its state now.
    bind = op.get_bind()
    target = sa.table("message_events", *[sa.column(c) for c in (
        "user_id", "message_id", "partition", "flow_key", "step", "channel", "variant", "kind", "status", "reason",
        "scheduled_us", "sent_us", "at_us", "opened_us")])
    after = -1
    while True:
        rows = bind.execute(sa.text(
            "SELECT seq, id, user_id, flow_key, step, channel, variant, kind, status, reason, scheduled_us, sent_us, "
            "updated_us, data FROM messages WHERE seq > :after ORDER BY seq LIMIT 5000"), {"after": after}).all()
        if not rows:
            break
        after = int(rows[-1][0])
        op.bulk_insert(target, [_event(r) for r in rows])


def _event(row: Any) -> dict[str, Any]:
    _, message_id, user_id, flow_key, step, channel, variant, kind, status, reason, scheduled, sent, updated, data = row
    opened = None
    if status in ("opened", "clicked"):
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = {}
        stamps = [doc.get("opened_us"), doc.get("clicked_us")] if isinstance(doc, dict) else []
        opened = next((v for v in stamps if isinstance(v, int) and not isinstance(v, bool) and v), updated)
    return {"user_id": user_id, "message_id": message_id, "partition": zlib.crc32(user_id.encode("utf-8")) % 64,
            "flow_key": flow_key, "step": step, "channel": channel, "variant": variant or "", "kind": kind,
            "status": status, "reason": reason or "", "scheduled_us": scheduled, "sent_us": sent, "at_us": updated,
            "opened_us": opened}


def downgrade() -> None:
    for table in ROLLUPS:
        with op.batch_alter_table(table) as batch:
            for name in ("control_revenue_sq", "control_revenue", "revenue_sq"):
                batch.drop_column(name)
            batch.drop_column("revenue")
            batch.drop_column("purchases")
    with op.batch_alter_table("kpi_messages") as batch:
        batch.drop_column("revenue")
        batch.drop_column("purchases")
    op.drop_table("kpi_current")
    op.drop_table("kpi_credits")
    op.drop_table("kpi_calendar")
    op.drop_table("message_events")

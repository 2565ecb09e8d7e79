"""Flows: versions, runs, messages (the send ledger), outbox, favorites, listings.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "flow_versions",
        sa.Column("flow_key", sa.String(100), primary_key=True),
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "flow_runs",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("flow_key", sa.String(100), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("entity", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cursor", sa.String(200), nullable=False),
        sa.Column("trigger_us", sa.BigInteger, nullable=False),
        sa.Column("entered_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("exit_reason", sa.Text, nullable=True),
    )
    op.create_index("ix_flow_runs_user", "flow_runs", ["user_id", "status"])
    op.create_index("ix_flow_runs_flow", "flow_runs", ["flow_key", "status", "cursor"])
    op.create_index("ux_flow_runs_live", "flow_runs", ["flow_key", "user_id", "entity"], unique=True,
                    sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
    op.create_table(
        "messages",
        sa.Column("seq", RowId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("run_id", sa.BigInteger, nullable=True),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("flow_key", sa.String(100), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("scheduled_us", sa.BigInteger, nullable=False),
        sa.Column("sent_us", sa.BigInteger, nullable=True),
        sa.Column("expires_us", sa.BigInteger, nullable=True),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=True),
        sa.Column("image_url", sa.Text, nullable=True),
        sa.Column("variant", sa.String(100), nullable=True),
        sa.Column("coupon", sa.String(64), nullable=True),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ux_messages_id", "messages", ["id"], unique=True)
    op.create_index("ix_messages_user", "messages", ["user_id", "seq"])
    op.create_index("ix_messages_flow", "messages", ["flow_key", "seq"])
    op.create_index("ix_messages_user_channel_sent", "messages", ["user_id", "channel", "sent_us"])
    op.create_table(
        "outbox",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ux_outbox_message", "outbox", ["message_id"], unique=True)
    op.create_index("ix_outbox_pending", "outbox", ["state", "next_us"])
    op.create_table(
        "favorites",
        sa.Column("listing_id", sa.String(256), primary_key=True),
        sa.Column("user_id", sa.String(300), primary_key=True),
        sa.Column("added_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_favorites_user", "favorites", ["user_id"])
    op.create_table(
        "listings",
        sa.Column("listing_id", sa.String(256), primary_key=True),
        sa.Column("seller_id", sa.String(300), nullable=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("price", sa.Float, nullable=True),
        sa.Column("category", sa.String(100), nullable=True),
        sa.Column("image_url", sa.Text, nullable=True),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("listings", "favorites", "outbox", "messages", "flow_runs", "flow_versions"):
        op.drop_table(table)

"""Webhook event ids already applied (replays refused), with their expiry.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("provider", sa.String(40), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_webhook_events_expires", "webhook_events", ["expires_us"])


def downgrade() -> None:
    op.drop_index("ix_webhook_events_expires", table_name="webhook_events")
    op.drop_table("webhook_events")

"""Segment transitions carry the event time of their cause and their origin (live, rebuild or import).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segment_transitions") as batch:
        batch.add_column(sa.Column("event_us", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("origin", sa.String(8), nullable=False, server_default="live"))


def downgrade() -> None:
    with op.batch_alter_table("segment_transitions") as batch:
        batch.drop_column("origin")
        batch.drop_column("event_us")

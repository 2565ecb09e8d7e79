"""Segments: per-user incremental state, memberships (per entity for patterns), transitions with reasons.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "segment_state",
        sa.Column("user_id", sa.String(300), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment_key", sa.String(100), primary_key=True),
        sa.Column("user_id", sa.String(300), primary_key=True),
        sa.Column("entity", sa.String(256), primary_key=True),
        sa.Column("since_us", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_segment_members_user", "segment_members", ["user_id"])
    op.create_table(
        "segment_transitions",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("segment_key", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("entity", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_segment_transitions_segment", "segment_transitions", ["segment_key", "at_us"])
    op.create_index("ix_segment_transitions_user", "segment_transitions", ["user_id", "at_us"])


def downgrade() -> None:
    for table in ("segment_transitions", "segment_members", "segment_state"):
        op.drop_table(table)

"""Consent audit trail: every opt-in and opt-out with who, when and from where (PDPA).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "consent_changes",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_index("ix_consent_changes_user", "consent_changes", ["user_id", "at_us"])


def downgrade() -> None:
    op.drop_table("consent_changes")

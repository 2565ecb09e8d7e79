"""Coupons issued by the embedded coupon engine: unique codes, per-user, expiring, redeemed at most once.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupons",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("issue_key", sa.String(512), nullable=True),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("value", sa.String(32), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("redeemed_us", sa.BigInteger, nullable=True),
        sa.Column("order_id", sa.String(256), nullable=True),
    )
    op.create_index("ix_coupons_issue_key", "coupons", ["issue_key"], unique=True)
    op.create_index("ix_coupons_user", "coupons", ["user_id", "created_us"])


def downgrade() -> None:
    op.drop_table("coupons")

"""Per-user optimization models: send-time (per channel) and channel preference evidence.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_models",
        sa.Column("user_id", sa.String(300), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("user_models")

"""The spine: event log, profiles, identities, timers, engine state.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(256), nullable=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("anonymous_id", sa.String(256), nullable=True),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("received_us", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("extra", sa.Text, nullable=True),
    )
    op.create_index("ix_events_message_id", "events", ["message_id"], unique=True)
    op.create_index("ix_events_user_ts", "events", ["user_id", "ts_us"])
    op.create_table(
        "profiles",
        sa.Column("user_id", sa.String(300), primary_key=True),
        sa.Column("anonymous", sa.Boolean, nullable=False),
        sa.Column("traits", sa.Text, nullable=False),
        sa.Column("trait_times", sa.Text, nullable=False),
        sa.Column("first_seen_us", sa.BigInteger, nullable=False),
        sa.Column("last_active_us", sa.BigInteger, nullable=True),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "identities",
        sa.Column("anonymous_id", sa.String(256), primary_key=True),
        sa.Column("user_id", sa.String(300), nullable=False),
        sa.Column("linked_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_identities_user_id", "identities", ["user_id"])
    op.create_table(
        "timers",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("due_us", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("ix_timers_key", "timers", ["key"], unique=True)
    op.create_index("ix_timers_due", "timers", ["due_us"])
    op.create_table(
        "engine_state",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("engine_state", "timers", "identities", "profiles", "events"):
        op.drop_table(table)

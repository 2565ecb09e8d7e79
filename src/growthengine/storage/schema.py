"""The tables, as SQLAlchemy Core metadata. Migrations (``migrations/``) create and evolve them.

Instants are stored as integer microseconds since the Unix epoch (``*_us``): exact, compact, indexable and
the same on both databases. JSON documents are stored as text written by orjson.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# An INTEGER PRIMARY KEY on SQLite is the rowid (fast appends); BIGINT identity on PostgreSQL.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
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
    sa.Column("partition", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("origin", sa.String(8), nullable=True),  # "import": history loaded by growth import; NULL: live
    sa.Index("ix_events_message_id", "message_id", unique=True),
    sa.Index("ix_events_user_ts", "user_id", "ts_us"),
)

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("user_id", sa.String(300), primary_key=True),
    sa.Column("anonymous", sa.Boolean, nullable=False, default=False),
    sa.Column("traits", sa.Text, nullable=False),
    sa.Column("trait_times", sa.Text, nullable=False),
    sa.Column("first_seen_us", sa.BigInteger, nullable=False),
    sa.Column("last_active_us", sa.BigInteger, nullable=True),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

identities = sa.Table(
    "identities",
    metadata,
    sa.Column("anonymous_id", sa.String(256), primary_key=True),
    sa.Column("user_id", sa.String(300), nullable=False, index=True),
    sa.Column("linked_us", sa.BigInteger, nullable=False),
)

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("id", RowId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("due_us", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("partition", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Index("ix_timers_key", "key", unique=True),
    sa.Index("ix_timers_due", "due_us"),
)

engine_state = sa.Table(
    "engine_state",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

segment_state = sa.Table(
    "segment_state",
    metadata,
    sa.Column("user_id", sa.String(300), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("segment_key", sa.String(100), primary_key=True),
    sa.Column("user_id", sa.String(300), primary_key=True),
    sa.Column("entity", sa.String(256), primary_key=True),
    sa.Column("since_us", sa.BigInteger, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_segment_members_user", "user_id"),
)

segment_transitions = sa.Table(
    "segment_transitions",
    metadata,
    sa.Column("id", RowId, primary_key=True, autoincrement=True),
    sa.Column("segment_key", sa.String(100), nullable=False),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("entity", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("event_us", sa.BigInteger, nullable=True),  # the event time of its cause (NULL: before 0011)
    sa.Column("origin", sa.String(8), nullable=False, server_default="live"),  # live | rebuild | import
    sa.Index("ix_segment_transitions_segment", "segment_key", "at_us"),
    sa.Index("ix_segment_transitions_user", "user_id", "at_us"),
)

coupons = sa.Table(
    "coupons",
    metadata,
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("issue_key", sa.String(512), nullable=True),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("value", sa.String(32), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Column("redeemed_us", sa.BigInteger, nullable=True),
    sa.Column("order_id", sa.String(256), nullable=True),
    sa.Index("ix_coupons_issue_key", "issue_key", unique=True),
    sa.Index("ix_coupons_user", "user_id", "created_us"),
)

consent_changes = sa.Table(
    "consent_changes",
    metadata,
    sa.Column("id", RowId, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Index("ix_consent_changes_user", "user_id", "at_us"),
)

user_models = sa.Table(
    "user_models",
    metadata,
    sa.Column("user_id", sa.String(300), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

"""The tables, as SQLAlchemy Core metadata. Migrations (``migrations/``) create and evolve them.

Instants are stored as integer microseconds since the Unix epoch (``*_us``): exact, compact, indexable and
the same on both databases. JSON documents are stored as text written by orjson.

Every hot table is keyed by user id first (its primary key starts with ``user_id``), so that the schema could
later be distributed by user id; ``user_keys.py`` says which tables are not, why, which lookups by a global id
stay (cross-shard on a distributed database) and why SQLite keeps its row ids.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn

from growthengine.storage.user_keys import ROW_ID_TABLES

metadata = sa.MetaData()

# An INTEGER PRIMARY KEY on SQLite is the rowid (fast appends); BIGINT identity on PostgreSQL.
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _sqlite_row_id(table: sa.Table | None) -> str | None:
    """The generated id of a table keyed ``(user_id, id)``, which SQLite keys by the id alone (its rowid)."""
    if table is None or len(table.primary_key.columns) < 2:
        return None
    return ROW_ID_TABLES.get(table.name)


@compiles(sa.PrimaryKeyConstraint, "sqlite")
def _sqlite_primary_key(constraint: sa.PrimaryKeyConstraint, compiler: Any, **kw: Any) -> str:
    row_id = _sqlite_row_id(constraint.table)
    if row_id is not None:
        return f"PRIMARY KEY ({compiler.preparer.quote(row_id)})"
    return str(compiler.visit_primary_key_constraint(constraint, **kw))


@compiles(CreateColumn, "sqlite")
def _sqlite_column(create: CreateColumn, compiler: Any, **kw: Any) -> str:
    column = create.element
    if column.name == _sqlite_row_id(column.table):
        return f"{compiler.preparer.format_column(column)} INTEGER NOT NULL"
    return str(compiler.visit_create_column(create, **kw))

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", RowId, autoincrement=True),
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
    sa.PrimaryKeyConstraint("user_id", "id", name="events_pkey"),
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
    sa.Column("id", RowId, autoincrement=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("key", sa.String(512), nullable=False),
    sa.Column("due_us", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("partition", sa.SmallInteger, nullable=False, server_default="0"),
    sa.PrimaryKeyConstraint("partition", "id", name="timers_pkey"),
    sa.Index("ix_timers_key", "key", unique=True),
    sa.Index("ix_timers_due", "due_us"),
    sa.Index("ix_timers_partition_due", "partition", "due_us"),
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
    sa.Column("segment_key", sa.String(100), nullable=False),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("entity", sa.String(256), nullable=False),
    sa.Column("since_us", sa.BigInteger, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("user_id", "segment_key", "entity", name="segment_members_pkey"),
    sa.Index("ix_segment_members_segment", "segment_key", "user_id", "entity"),
)

segment_transitions = sa.Table(
    "segment_transitions",
    metadata,
    sa.Column("id", RowId, autoincrement=True),
    sa.Column("segment_key", sa.String(100), nullable=False),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("entity", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("event_us", sa.BigInteger, nullable=True),  # the event time of its cause (NULL: before 0011)
    sa.Column("origin", sa.String(8), nullable=False, server_default="live"),  # live | rebuild | import
    sa.PrimaryKeyConstraint("user_id", "id", name="segment_transitions_pkey"),
    sa.Index("ix_segment_transitions_segment", "segment_key", "at_us"),
    sa.Index("ix_segment_transitions_user", "user_id", "at_us"),
)

coupons = sa.Table(
    "coupons",
    metadata,
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("issue_key", sa.String(512), nullable=True),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("value", sa.String(32), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Column("redeemed_us", sa.BigInteger, nullable=True),
    sa.Column("order_id", sa.String(256), nullable=True),
    sa.PrimaryKeyConstraint("user_id", "code", name="coupons_pkey"),
    sa.Index("ux_coupons_code", "code", unique=True),
    sa.Index("ix_coupons_issue_key", "issue_key", unique=True),
    sa.Index("ix_coupons_user", "user_id", "created_us"),
)

consent_changes = sa.Table(
    "consent_changes",
    metadata,
    sa.Column("id", RowId, autoincrement=True),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("granted", sa.Boolean, nullable=False),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.PrimaryKeyConstraint("user_id", "id", name="consent_changes_pkey"),
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

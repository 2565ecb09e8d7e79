"""Tables of the flow engine: versions, runs, messages (the send ledger), the outbox, favorites, the catalog."""

from __future__ import annotations

import sqlalchemy as sa

from growthengine.storage.schema import RowId, metadata

flow_versions = sa.Table(
    "flow_versions",
    metadata,
    sa.Column("flow_key", sa.String(100), primary_key=True),
    sa.Column("version", sa.String(40), primary_key=True),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
)

flow_runs = sa.Table(
    "flow_runs",
    metadata,
    sa.Column("id", RowId, autoincrement=True),
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
    sa.PrimaryKeyConstraint("user_id", "id", name="flow_runs_pkey"),
    sa.Index("ix_flow_runs_user", "user_id", "status"),
    sa.Index("ix_flow_runs_flow", "flow_key", "status", "cursor"),
    sa.Index("ux_flow_runs_live", "flow_key", "user_id", "entity", unique=True,
             sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'")),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("seq", RowId, autoincrement=True),
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
    sa.PrimaryKeyConstraint("user_id", "seq", name="messages_pkey"),
    sa.Index("ux_messages_id", "id", unique=True),
    sa.Index("ix_messages_user", "user_id", "seq"),
    sa.Index("ix_messages_flow", "flow_key", "seq"),
    sa.Index("ix_messages_user_channel_sent", "user_id", "channel", "sent_us"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", RowId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(40), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # done (the local outbox) | pending | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_us", sa.BigInteger, nullable=True),  # business time: when a pending row may first go
    # System time: when a lease runs out or a retry may go (backoff and leases are real, whatever the test clock).
    sa.Column("retry_at_s", sa.Float, nullable=True),
    sa.Column("claimed_by", sa.String(128), nullable=True),  # the worker whose lease ``retry_at_s`` is, if any
    sa.Index("ux_outbox_message", "message_id", unique=True),
    sa.Index("ix_outbox_pending", "state", "next_us"),
)

favorites = sa.Table(
    "favorites",
    metadata,
    sa.Column("listing_id", sa.String(256), nullable=False),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("added_us", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("user_id", "listing_id", name="favorites_pkey"),
    sa.Index("ix_favorites_listing", "listing_id", "user_id"),
)

listings = sa.Table(
    "listings",
    metadata,
    sa.Column("listing_id", sa.String(256), primary_key=True),
    sa.Column("seller_id", sa.String(300), nullable=True),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("price", sa.Float, nullable=True),
    sa.Column("category", sa.String(100), nullable=True),
    sa.Column("image_url", sa.Text, nullable=True),
    sa.Column("updated_us", sa.BigInteger, nullable=False),
)

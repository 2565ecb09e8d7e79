"""Webhook event ids already applied, kept until they expire, so a replayed webhook changes nothing.

Each provider's webhook carries an id per event (SendGrid ``sg_event_id``, the SNS ``MessageId``, Twilio's message
SID with its status); an id is remembered in the transaction that applies its event. Expiry is system time.
"""

from __future__ import annotations

import sqlalchemy as sa

from growthengine.storage.dialects import insert_for
from growthengine.storage.schema import metadata

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("provider", sa.String(40), primary_key=True),
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Index("ix_webhook_events_expires", "expires_us"),
)


class WebhookEventStore:
    """The seen-ids table, inside one transaction."""

    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def purge(self, now_us: int) -> int:
        """Forget the ids whose time is up; returns how many."""
        result = self._conn.execute(sa.delete(webhook_events).where(webhook_events.c.expires_us < now_us))
        return int(result.rowcount or 0)

    def remember(self, provider: str, event_id: str, expires_us: int) -> bool:
        """Record the id; False when it was already there (the event is a replay)."""
        stmt = insert_for(self._dialect, webhook_events).values(
            provider=provider[:40], event_id=event_id[:200], expires_us=expires_us,
        ).on_conflict_do_nothing(index_elements=["provider", "event_id"]).returning(webhook_events.c.event_id)
        return self._conn.execute(stmt).first() is not None  # rowcount is not reliable here on every driver

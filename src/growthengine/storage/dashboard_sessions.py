"""Dashboard sessions, kept server side: shared by every process on the database, kept across restarts, and
revoked at logout. Only the SHA-256 of each session token is stored, so a copy of the database opens no session."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from growthengine.storage.schema import metadata

dashboard_sessions = sa.Table(
    "dashboard_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Index("ix_dashboard_sessions_expires", "expires_us"),
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class DashboardSessionStore:
    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    def add(self, token: str, now_us: int, expires_us: int) -> None:
        """Store a new session; sessions that have expired are cleared on the way."""
        self._conn.execute(sa.delete(dashboard_sessions).where(dashboard_sessions.c.expires_us <= now_us))
        self._conn.execute(dashboard_sessions.insert().values(token_hash=_hash(token), created_us=now_us,
                                                              expires_us=expires_us))

    def is_open(self, token: str, now_us: int) -> bool:
        expires = self._conn.execute(sa.select(dashboard_sessions.c.expires_us)
                                     .where(dashboard_sessions.c.token_hash == _hash(token))).scalar()
        return expires is not None and now_us < expires

    def revoke(self, token: str) -> None:
        self._conn.execute(sa.delete(dashboard_sessions).where(dashboard_sessions.c.token_hash == _hash(token)))

"""The consent audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from growthengine.storage.schema import consent_changes


@dataclass(frozen=True, slots=True)
class ConsentChange:
    user_id: str
    channel: str
    granted: bool
    at_us: int
    source: str
    detail: str | None = None


class ConsentStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def record(self, changes: Sequence[ConsentChange]) -> None:
        if changes:
            self._conn.execute(consent_changes.insert(), [
                {"user_id": c.user_id, "channel": c.channel, "granted": c.granted, "at_us": c.at_us,
                 "source": c.source, "detail": c.detail} for c in changes
            ])

    def for_user(self, user_id: str) -> list[ConsentChange]:
        rows = self._conn.execute(
            sa.select(consent_changes).where(consent_changes.c.user_id == user_id)
            .order_by(consent_changes.c.at_us, consent_changes.c.id)
        ).mappings()
        return [ConsentChange(r["user_id"], r["channel"], bool(r["granted"]), r["at_us"], r["source"], r["detail"])
                for r in rows]

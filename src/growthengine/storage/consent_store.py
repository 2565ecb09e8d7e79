"""The consent audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from growthengine.storage.bulk_rows import write_rows
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
            write_rows(self._conn, self._dialect,
                       "INSERT INTO consent_changes (user_id, channel, granted, at_us, source, detail)", "",
                       ("text", "text", "boolean", "bigint", "text", "text"),
                       [(c.user_id, c.channel, bool(c.granted), c.at_us, c.source, c.detail) for c in changes])

    def for_user(self, user_id: str) -> list[ConsentChange]:
        rows = self._conn.execute(
            sa.select(consent_changes).where(consent_changes.c.user_id == user_id)
            .order_by(consent_changes.c.at_us, consent_changes.c.id)
        ).mappings()
        return [ConsentChange(r["user_id"], r["channel"], bool(r["granted"]), r["at_us"], r["source"], r["detail"])
                for r in rows]

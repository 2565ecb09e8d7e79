"""The append-only event log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.domain.events import Event
from growthengine.storage.dialects import insert_for
from growthengine.storage.schema import events


class EventLog:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def existing_message_ids(self, message_ids: Sequence[str]) -> set[str]:
        """Which of these message ids are already in the log."""
        found: set[str] = set()
        for start in range(0, len(message_ids), 500):
            chunk = list(message_ids[start : start + 500])
            rows = self._conn.execute(
                sa.select(events.c.message_id).where(events.c.message_id.in_(chunk))
            )
            found.update(r[0] for r in rows)
        return found

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Append rows (already shaped as the ``events`` table); a message id seen concurrently is skipped."""
        if not rows:
            return
        stmt = insert_for(self._dialect, events).on_conflict_do_nothing(index_elements=["message_id"])
        self._conn.execute(stmt, rows)

    def reassign(self, from_user: str, to_user: str) -> int:
        """Move an anonymous visitor's history to the user they turned out to be."""
        result = self._conn.execute(
            sa.update(events).where(events.c.user_id == from_user).values(user_id=to_user)
        )
        return result.rowcount or 0

    def for_user(self, user_id: str, *, since_us: int | None = None) -> list[Event]:
        """A user's events in time order."""
        query = sa.select(events).where(events.c.user_id == user_id)
        if since_us is not None:
            query = query.where(events.c.ts_us >= since_us)
        query = query.order_by(events.c.ts_us, events.c.id)
        return [_to_event(r) for r in self._conn.execute(query).mappings()]

    def scan(self, *, batch: int = 50_000) -> Iterator[list[Event]]:
        """The whole log ordered by user and time, in chunks (for rebuilds)."""
        query = sa.select(events).order_by(events.c.user_id, events.c.ts_us, events.c.id)
        result = self._conn.execution_options(yield_per=batch).execute(query).mappings()
        chunk: list[Event] = []
        for row in result:
            chunk.append(_to_event(row))
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def count(self) -> int:
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())


def _to_event(row: Any) -> Event:
    return Event(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        type=row["type"],
        ts_us=row["ts_us"],
        properties=orjson.loads(row["payload"]),
        message_id=row["message_id"],
    )



"""The append-only event log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.domain.events import Event
from growthengine.domain.partitions import partition_of
from growthengine.storage.driver_cursor import driver_values
from growthengine.storage.schema import events

# The hot statements of the ingestion path are plain SQL handed to the driver (``exec_driver_sql``): SQLAlchemy's
# per-row parameter processing cost more than SQLite's own work. The SQL is the same on both databases except for
# the parameter marker (``?`` for sqlite3, ``%s`` for psycopg) and how a list is matched (``IN`` / ``= ANY``).
# It is built from constant column names and markers only (hence the ``noqa: S608``); values are always parameters.
COLUMNS = ("message_id", "type", "name", "user_id", "anonymous_id", "ts_us", "received_us", "payload", "extra",
            "partition", "origin")
_PG_TYPES = ("text", "text", "text", "text", "text", "bigint", "bigint", "text", "text", "smallint", "text")
_NOT_COMMAND = events.c.type != "command"  # per-user commands for the stages share the log; they are no history
_required_values = itemgetter(*COLUMNS[:-1])
_SQLITE_HEAD = f"INSERT INTO events ({', '.join(COLUMNS)})"


def _row_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row's values in column order (``origin`` may be left out: a live call)."""
    return (*_required_values(row), row.get("origin"))


def marker(dialect: str) -> str:
    """The driver's parameter marker."""
    return "%s" if dialect == "postgresql" else "?"


def in_list(dialect: str, column: str, count: int) -> str:
    """``column`` matches one of ``count`` parameters (PostgreSQL takes them as one array parameter)."""
    if dialect == "postgresql":
        return f"{column} = ANY(%s)"
    return f"{column} IN ({','.join('?' * count)})"


def list_params(dialect: str, values: list[str]) -> tuple[Any, ...]:
    """The parameters for :func:`in_list`."""
    return (values,) if dialect == "postgresql" else tuple(values)


class EventLog:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect
        # SQLite: a few multi-row statements (``driver_values``). PostgreSQL: one statement for the whole batch,
        # which says which rows it stored: a concurrent insert of the same message id (another engine, the same
        # moment) waits for that one and is then left out, so the duplicate is decided by the insert itself.
        self._insert_pg_sql = (
            f"INSERT INTO events ({', '.join(COLUMNS)}) "  # noqa: S608
            f"SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in _PG_TYPES)}) "
            "ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
        )

    def existing_message_ids(self, message_ids: Sequence[str]) -> set[str]:
        """Which of these message ids are already in the log."""
        found: set[str] = set()
        for start in range(0, len(message_ids), 500):
            chunk = list(message_ids[start : start + 500])
            rows = self._conn.exec_driver_sql(
                f"SELECT message_id FROM events WHERE {in_list(self._dialect, 'message_id', len(chunk))}",  # noqa: S608
                list_params(self._dialect, chunk),
            )
            found.update(r[0] for r in rows)
        return found

    def append(self, rows: list[dict[str, Any]]) -> set[str]:
        """Append rows (already shaped as the ``events`` table); returns the message ids that were NOT stored
        because another transaction stored them first (always empty on SQLite, whose writers take turns)."""
        return self.append_values([_row_values(r) for r in rows])

    def append_values(self, rows: list[tuple[Any, ...]]) -> set[str]:
        """:meth:`append` of rows given as tuples in the order of ``COLUMNS`` (``origin`` last, ``None``: live),
        as ingestion builds them."""
        if not rows:
            return set()
        if self._dialect != "postgresql":
            driver_values(self._conn, _SQLITE_HEAD, "ON CONFLICT (message_id) DO NOTHING", len(COLUMNS), rows)
            return set()
        columns = [list(col) for col in zip(*rows, strict=True)]
        stored = {r[0] for r in self._conn.exec_driver_sql(self._insert_pg_sql, tuple(columns)) if r[0] is not None}
        return {r[0] for r in rows if r[0] is not None} - stored

    def reassign(self, from_user: str, to_user: str) -> int:
        """Move an anonymous visitor's history to the user they turned out to be."""
        result = self._conn.execute(
            sa.update(events).where(events.c.user_id == from_user, _NOT_COMMAND)
            .values(user_id=to_user, partition=partition_of(to_user))
        )
        return result.rowcount or 0

    def for_user(self, user_id: str, *, since_us: int | None = None, before_id: int | None = None) -> list[Event]:
        """A user's events in time order (those appended before row ``before_id``, when given)."""
        query = sa.select(events).where(events.c.user_id == user_id, _NOT_COMMAND)
        if before_id is not None:
            query = query.where(events.c.id < before_id)
        if since_us is not None:
            query = query.where(events.c.ts_us >= since_us)
        query = query.order_by(events.c.ts_us, events.c.id)
        return [_to_event(r) for r in self._conn.execute(query).mappings()]

    def for_users(self, user_ids: Sequence[str], *, since_us: int) -> dict[str, list[Event]]:
        """Many users' events since an instant, each user's in time order: one query per 500 users."""
        ids = list(dict.fromkeys(user_ids))
        found: dict[str, list[Event]] = {u: [] for u in ids}
        for start in range(0, len(ids), 500):
            query = sa.select(events).where(events.c.user_id.in_(ids[start:start + 500]), _NOT_COMMAND,
                                            events.c.ts_us >= since_us).order_by(events.c.ts_us, events.c.id)
            for row in self._conn.execute(query).mappings():
                event = _to_event(row)
                found[event.user_id].append(event)
        return found

    def scan(self, *, batch: int = 50_000, applied_by: str | None = None) -> Iterator[list[Event]]:
        """The whole log ordered by user and time, in chunks (for rebuilds). ``applied_by``: only the events that
        stage has applied (at or before its cursor in their partition), so that it goes on with the rest live."""
        query = sa.select(events).where(_NOT_COMMAND)
        if applied_by is not None:
            from growthengine.storage.pipeline_schema import stage_cursors

            cursor = stage_cursors.alias("c")
            position = sa.literal_column("events.txid") if self._dialect == "postgresql" else sa.literal(0)
            query = query.join(cursor, sa.and_(cursor.c.stage == applied_by, cursor.c.partition == events.c.partition)
                               ).where(sa.tuple_(position, events.c.id) <= sa.tuple_(cursor.c.tx_pos, cursor.c.id_pos))
        query = query.order_by(events.c.user_id, events.c.ts_us, events.c.id)
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
        return int(self._conn.execute(sa.select(sa.func.count()).select_from(events).where(_NOT_COMMAND)).scalar_one())


def _to_event(row: Any) -> Event:
    return Event(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        type=row["type"],
        ts_us=row["ts_us"],
        properties=orjson.loads(row["payload"]),
        message_id=row["message_id"],
        origin=row["origin"],
    )



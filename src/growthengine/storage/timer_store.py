"""Durable timers: work that falls due at a stored instant (never a sleep)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.domain.partitions import partition_of
from growthengine.storage.driver_cursor import driver_many, driver_rows
from growthengine.storage.event_log import marker
from growthengine.storage.schema import timers

# ``schedule_many`` is on every hot path (each event, run and held message books a timer): plain SQL for the
# driver, as in the event log (the same on both databases but for the parameter marker and min/least).
_UPSERT = (
    'INSERT INTO timers (kind, "key", due_us, payload, attempts, partition) VALUES ({m}, {m}, {m}, {m}, 0, {m}) '
    'ON CONFLICT ("key") DO UPDATE SET kind = excluded.kind, due_us = {due}, payload = excluded.payload, attempts = 0, '
    'partition = excluded.partition'
)


def timer_partition(key: str, payload: dict[str, Any]) -> int:
    """A timer belongs to its user's partition (``"u"`` in its payload), else to the partition its key hashes to."""
    user = payload.get("u")
    return partition_of(user if isinstance(user, str) else key)


@dataclass(slots=True, frozen=True)
class Timer:
    id: int
    kind: str
    key: str
    due_us: int
    payload: dict[str, Any]
    attempts: int


class TimerStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect
        mark = marker(dialect)
        least = "least" if dialect == "postgresql" else "min"
        self._upsert_sql = _UPSERT.format(m=mark, due="excluded.due_us")
        self._upsert_earliest_sql = _UPSERT.format(m=mark, due=f"{least}(timers.due_us, excluded.due_us)")

    def schedule(self, kind: str, key: str, due_us: int, payload: dict[str, Any] | None = None) -> None:
        """Set the timer named ``key`` to fire at ``due_us`` (an existing timer of that key is moved)."""
        self.schedule_many([(kind, key, due_us, payload or {})])

    def schedule_many(self, items: Sequence[tuple[str, str, int, dict[str, Any]]], *, earliest: bool = False) -> None:
        """Set many timers. With ``earliest``, an existing timer of the same key keeps the earlier due time."""
        if not items:
            return
        dumps = orjson.dumps
        rows = [(k, key, due, dumps(p).decode(), timer_partition(key, p)) for k, key, due, p in items]
        driver_many(self._conn, self._upsert_earliest_sql if earliest else self._upsert_sql, rows)

    def cancel(self, key: str) -> None:
        self._conn.execute(sa.delete(timers).where(timers.c.key == key))

    def set_attempts(self, key: str, attempts: int) -> None:
        self._conn.execute(sa.update(timers).where(timers.c.key == key).values(attempts=attempts))

    def get(self, key: str) -> Timer | None:
        row = self._conn.execute(sa.select(timers).where(timers.c.key == key)).mappings().first()
        return _to_timer(row) if row else None

    def next_due_us(self) -> int | None:
        # Asked once per fired instant (plain SQL: no statement built per call); the due index answers it.
        value = self._conn.exec_driver_sql("SELECT min(due_us) FROM timers").scalar()
        return int(value) if value is not None else None

    def due_count(self, until_us: int) -> int:
        query = sa.select(sa.func.count()).select_from(timers).where(timers.c.due_us <= until_us)
        return int(self._conn.execute(query).scalar_one())

    def claim_due(self, until_us: int, *, limit: int = 1000, at_us: int | None = None,
                  partitions: Sequence[int] | None = None) -> list[Timer]:
        """Timers due by ``until_us`` (or exactly at ``at_us``), earliest first, locked for this transaction;
        only those of ``partitions`` when given (a worker fires the timers of the partitions it owns).

        On PostgreSQL other workers skip the rows this one holds (``FOR UPDATE SKIP LOCKED``).
        """
        # Plain SQL (asked once per fired instant): no statement built per call.
        mark = marker(self._dialect)
        where = "due_us = " + mark if at_us is not None else "due_us <= " + mark
        params: list[Any] = [at_us if at_us is not None else until_us]
        if partitions is not None:
            where += f" AND partition IN ({', '.join([mark] * len(partitions))})" if partitions else " AND 1 = 0"
            params.extend(int(p) for p in partitions)
        sql = (f'SELECT id, kind, "key", due_us, payload, attempts FROM timers WHERE {where} '  # noqa: S608
               f"ORDER BY due_us, id LIMIT {int(limit)}")
        if self._dialect == "postgresql":
            sql += " FOR UPDATE SKIP LOCKED"
        loads = orjson.loads
        return [Timer(id_, kind, key, due_us, loads(payload), attempts)
                for id_, kind, key, due_us, payload, attempts in self._conn.exec_driver_sql(sql, tuple(params))]

    def take_next_instant(self, until_us: int, *, limit: int) -> list[Timer]:
        """Claim and delete, in one statement, the timers of the earliest instant due, if it is by ``until_us``
        (at most ``limit`` of them, lowest id first): what a manual clock advance fires next. A handler that
        fails has its timers booked again (``Scheduler._retry_later``)."""
        mark = marker(self._dialect)
        # The limit is a parameter: the statement's text stays the same from instant to instant, so the driver
        # prepares it once (a text that changes is prepared again each time and pushes others out of its cache).
        pick = (f"SELECT id FROM timers WHERE due_us = (SELECT min(due_us) FROM timers) AND due_us <= {mark} "  # noqa: S608
                f"ORDER BY id LIMIT {mark}")
        if self._dialect == "postgresql":
            pick += " FOR UPDATE SKIP LOCKED"
        sql = (f'DELETE FROM timers WHERE id IN ({pick}) '  # noqa: S608
               'RETURNING id, kind, "key", due_us, payload, attempts')
        loads = orjson.loads
        rows = driver_rows(self._conn, sql, (until_us, int(limit)))
        return sorted((Timer(id_, kind, key, due_us, loads(payload), attempts)
                       for id_, kind, key, due_us, payload, attempts in rows), key=lambda t: t.id)

    def delete(self, ids: Sequence[int]) -> None:
        """Delete timers by id (plain SQL, 500 a statement: fired timers are deleted instant by instant)."""
        mark = marker(self._dialect)
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start : start + 500]]
            self._conn.exec_driver_sql(f"DELETE FROM timers WHERE id IN ({', '.join([mark] * len(chunk))})",  # noqa: S608
                                       tuple(chunk))

    def count(self, kind: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(timers)
        if kind is not None:
            query = query.where(timers.c.kind == kind)
        return int(self._conn.execute(query).scalar_one())


def _to_timer(row: Any) -> Timer:
    return Timer(
        id=row["id"], kind=row["kind"], key=row["key"], due_us=row["due_us"],
        payload=orjson.loads(row["payload"]), attempts=row["attempts"],
    )

"""Segment state, memberships and transitions."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import orjson
import sqlalchemy as sa

from growthengine.domain.partitions import partition_of
from growthengine.storage.bulk_rows import write_rows
from growthengine.storage.driver_cursor import driver_many, driver_rows
from growthengine.storage.event_log import in_list, list_params, marker
from growthengine.storage.schema import segment_members, segment_state, segment_transitions

# The writes of every ingested batch and fired timer are plain SQL for the driver, as in the event log (the same
# on both databases but for the parameter marker), built from constant names and markers only (``noqa: S608``).
_SAVE_STATE = ("INSERT INTO segment_state (user_id, state, updated_us)",
               "ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, updated_us = excluded.updated_us",
               ("text", "text", "bigint"))
_UPSERT_MEMBER = ("INSERT INTO segment_members (segment_key, user_id, entity, since_us, data, reason)",
                  "ON CONFLICT (user_id, segment_key, entity) DO UPDATE SET "
                  "since_us = excluded.since_us, data = excluded.data, reason = excluded.reason",
                  ("text", "text", "text", "bigint", "text", "text"))
_DELETE_MEMBER = "DELETE FROM segment_members WHERE segment_key = {m} AND user_id = {m} AND entity = {m}"
_TRANSITION = ("INSERT INTO segment_transitions (segment_key, user_id, entity, kind, at_us, reason, data, event_us, "
               "origin)", "", ("text", "text", "text", "text", "bigint", "text", "text", "bigint", "text"))

_FENCE = (
    "INSERT INTO engine_state (key, value) VALUES ({m}, {m}) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

STATE_FENCE_PREFIX = "segcache:"
"""Keys in ``engine_state`` that keep the segment stage's in-memory state honest (``segments/state_cache.py``): one
per partition (``segcache:p:N``), given a new value by every write of segment state that does not come from the
partition's owner (a rebuild, a back-fill, a command-line run, another worker's merge), and one per cache
(``segcache:w:...``), given a new value by each of its own writes."""


def partition_fence_key(partition: int) -> str:
    return f"{STATE_FENCE_PREFIX}p:{partition}"


Origin = Literal["live", "rebuild", "import"]
ORIGINS: tuple[str, ...] = get_args(Origin)


@dataclass(frozen=True, slots=True)
class Transition:
    """A user (per entity, for pattern segments) entering or leaving a segment, and why.

    ``at_us`` is when the engine found it; ``event_us`` the event time of what caused it (the event, or the due time
    of the timer that looked again); ``origin`` whether live processing, a rebuild (or back-fill) or an import of
    history found it.
    """

    segment: str
    user_id: str
    entity: str
    kind: str  # "enter" | "exit"
    at_us: int
    reason: str
    data: dict[str, Any]
    event_us: int | None = None
    origin: Origin = "live"

    @property
    def lag_us(self) -> int:
        """How long after its event time the transition was found."""
        return 0 if self.event_us is None else max(0, self.at_us - self.event_us)

    def starts_flows(self, max_lag_us: int) -> bool:
        """Only a fresh, live entry starts flows: a rebuild, a back-fill or an import of history sends nothing, and
        an entry found more than ``max_lag_us`` after its event time is recorded but starts nothing."""
        return self.kind == "enter" and self.origin == "live" and self.lag_us <= max_lag_us


@dataclass(frozen=True, slots=True)
class Membership:
    segment: str
    user_id: str
    entity: str
    since_us: int
    data: dict[str, Any]
    reason: str


class _Encoded:
    """JSON texts of the data dicts written by one call, by object: a dict shared by rows is encoded once. The
    rows keep their dicts alive for the call, so an identity is not reused meanwhile."""

    __slots__ = ("_texts",)

    def __init__(self) -> None:
        self._texts: dict[int, tuple[dict[str, Any], str]] = {}

    def text(self, data: dict[str, Any]) -> str:
        known = self._texts.get(id(data))
        if known is not None and known[0] is data:
            return known[1]
        text = orjson.dumps(data).decode()
        self._texts[id(data)] = (data, text)
        return text


class SegmentStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect
        self._mark = marker(dialect)

    # Per-user incremental state -------------------------------------------------------------------

    def load_states(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(user_ids))
        lock = " ORDER BY user_id FOR UPDATE" if self._dialect == "postgresql" else ""
        loads = orjson.loads
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            where = in_list(self._dialect, "user_id", len(chunk))
            sql = f"SELECT user_id, state FROM segment_state WHERE {where}"  # noqa: S608 (constant names, markers)
            for user_id, state in driver_rows(self._conn, sql + lock, list_params(self._dialect, chunk)):
                found[user_id] = loads(state)
        return found

    def save_states(self, states: dict[str, dict[str, Any]], at_us: int, *, owned: bool = False) -> None:
        """Write users' state. ``owned``: the write of the partition's owner through its in-memory state (anything
        else tells every owner's cache that these users' partitions changed under it)."""
        if not states:
            return
        dumps = orjson.dumps
        if self._dialect == "sqlite":
            # The encoded bytes as they are (stored as a BLOB, read back as bytes, which orjson parses): a heavy
            # user's document is tens of KB of mostly Thai text, and decoding it to str for the driver to encode
            # again cost as much as encoding it. PostgreSQL's text column takes text.
            rows: list[tuple[str, str | bytes, int]] = [(u, dumps(s), at_us) for u, s in states.items()]
        else:
            rows = [(u, dumps(s).decode(), at_us) for u, s in states.items()]
        write_rows(self._conn, self._dialect, *_SAVE_STATE, rows)
        if not owned:
            self.touch_fences(states)

    def delete_state(self, user_id: str, *, owned: bool = False) -> None:
        self._conn.execute(sa.delete(segment_state).where(segment_state.c.user_id == user_id))
        if not owned:
            self.touch_fences([user_id])

    def touch_fences(self, user_ids: Iterable[str]) -> None:
        """Tell the owners' in-memory state that these users' partitions were written by someone else."""
        partitions = sorted({partition_of(u) for u in user_ids})
        if partitions:
            value = orjson.dumps(uuid.uuid4().hex).decode()
            self.put_fences({partition_fence_key(p): value for p in partitions})

    def put_fences(self, values: dict[str, str]) -> None:
        """Set fence keys (``values``: key -> JSON text)."""
        driver_many(self._conn, _FENCE.format(m=self._mark), list(values.items()))

    def drop_fences(self, keys: Sequence[str]) -> None:
        driver_many(self._conn, f"DELETE FROM engine_state WHERE key = {self._mark}", [(k,) for k in keys])  # noqa: S608 (a marker)

    def fences(self) -> dict[str, str]:
        """Every fence key with its JSON text."""
        sql = f"SELECT key, value FROM engine_state WHERE key LIKE {self._mark}"  # noqa: S608 (a constant marker)
        return dict(driver_rows(self._conn, sql, (STATE_FENCE_PREFIX + "%",)))

    # Memberships ----------------------------------------------------------------------------------

    def upsert_members(self, members: Sequence[Membership], *, encoded: _Encoded | None = None) -> None:
        if not members:
            return
        text = (encoded or _Encoded()).text
        rows = [(m.segment, m.user_id, m.entity, m.since_us, text(m.data), m.reason) for m in members]
        write_rows(self._conn, self._dialect, *_UPSERT_MEMBER, rows, key=lambda r: (r[1], r[0], r[2]))

    def write_changes(self, removed: Sequence[tuple[str, str, str]], members: Sequence[Membership],
                      transitions: Sequence[Transition]) -> None:
        """A pass's memberships left, memberships written and transitions: an entry's membership and its
        transition hold the same data, encoded once."""
        encoded = _Encoded()
        self.delete_members(removed)
        self.upsert_members(members, encoded=encoded)
        self.record_transitions(transitions, encoded=encoded)

    def delete_members(self, keys: Sequence[tuple[str, str, str]]) -> None:
        if keys:
            self._conn.exec_driver_sql(_DELETE_MEMBER.format(m=self._mark), list(keys))

    def delete_user_members(self, user_id: str) -> None:
        self._conn.execute(sa.delete(segment_members).where(segment_members.c.user_id == user_id))

    def members_of_user(self, user_id: str) -> list[Membership]:
        rows = self._conn.execute(
            sa.select(segment_members).where(segment_members.c.user_id == user_id)
            .order_by(segment_members.c.segment_key, segment_members.c.entity)
        ).mappings()
        return [_membership(r) for r in rows]

    def members_page(self, segment: str, *, after: str | None, limit: int) -> list[str]:
        """Distinct user ids in ``segment``, ordered, after a cursor."""
        query = (
            sa.select(segment_members.c.user_id).distinct()
            .where(segment_members.c.segment_key == segment)
            .order_by(segment_members.c.user_id).limit(limit)
        )
        if after is not None:
            query = query.where(segment_members.c.user_id > after)
        return [r[0] for r in self._conn.execute(query)]

    def memberships_page(self, segment: str, *, after: tuple[str, str] | None, limit: int) -> list[Membership]:
        """A segment's memberships (user, entity) in order, after a (user, entity) cursor."""
        c = segment_members.c
        query = sa.select(segment_members).where(c.segment_key == segment).order_by(c.user_id, c.entity).limit(limit)
        if after is not None:
            query = query.where(sa.or_(c.user_id > after[0], sa.and_(c.user_id == after[0], c.entity > after[1])))
        return [_membership(r) for r in self._conn.execute(query).mappings()]

    def sizes(self) -> dict[str, int]:
        rows = self._conn.execute(
            sa.select(segment_members.c.segment_key, sa.func.count(sa.distinct(segment_members.c.user_id)))
            .group_by(segment_members.c.segment_key)
        )
        return {key: int(n) for key, n in rows}

    def clear_segment(self, segment: str) -> None:
        self._conn.execute(sa.delete(segment_members).where(segment_members.c.segment_key == segment))

    # Transitions ----------------------------------------------------------------------------------

    def record_transitions(self, transitions: Sequence[Transition], *, encoded: _Encoded | None = None) -> None:
        if not transitions:
            return
        text = (encoded or _Encoded()).text
        rows = [(t.segment, t.user_id, t.entity, t.kind, t.at_us, t.reason, text(t.data),
                 t.at_us if t.event_us is None else t.event_us, t.origin) for t in transitions]
        write_rows(self._conn, self._dialect, *_TRANSITION, rows)

    def transitions(self, *, user_id: str | None = None, segment: str | None = None,
                    limit: int = 1000) -> list[Transition]:
        query = sa.select(segment_transitions).order_by(segment_transitions.c.id).limit(limit)
        if user_id is not None:
            query = query.where(segment_transitions.c.user_id == user_id)
        if segment is not None:
            query = query.where(segment_transitions.c.segment_key == segment)
        return [
            Transition(r["segment_key"], r["user_id"], r["entity"], r["kind"], r["at_us"], r["reason"],
                       orjson.loads(r["data"]), r["event_us"], r["origin"])
            for r in self._conn.execute(query).mappings()
        ]


def _membership(row: Any) -> Membership:
    return Membership(row["segment_key"], row["user_id"], row["entity"], row["since_us"],
                      orjson.loads(row["data"]), row["reason"])

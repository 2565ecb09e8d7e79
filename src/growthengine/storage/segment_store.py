"""Segment state, memberships and transitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.storage.dialects import insert_for
from growthengine.storage.schema import segment_members, segment_state, segment_transitions


@dataclass(frozen=True, slots=True)
class Transition:
    """A user (per entity, for pattern segments) entering or leaving a segment, and why."""

    segment: str
    user_id: str
    entity: str
    kind: str  # "enter" | "exit"
    at_us: int
    reason: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Membership:
    segment: str
    user_id: str
    entity: str
    since_us: int
    data: dict[str, Any]
    reason: str


class SegmentStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    # Per-user incremental state -------------------------------------------------------------------

    def load_states(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(user_ids))
        for start in range(0, len(ids), 500):
            query = sa.select(segment_state.c.user_id, segment_state.c.state).where(
                segment_state.c.user_id.in_(ids[start : start + 500])
            )
            if self._dialect == "postgresql":
                query = query.order_by(segment_state.c.user_id).with_for_update()
            for user_id, state in self._conn.execute(query):
                found[user_id] = orjson.loads(state)
        return found

    def save_states(self, states: dict[str, dict[str, Any]], at_us: int) -> None:
        if not states:
            return
        rows = [{"user_id": u, "state": orjson.dumps(s).decode(), "updated_us": at_us} for u, s in states.items()]
        stmt = insert_for(self._dialect, segment_state)
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"], set_={"state": stmt.excluded.state, "updated_us": stmt.excluded.updated_us}
        )
        self._conn.execute(stmt, rows)

    def delete_state(self, user_id: str) -> None:
        self._conn.execute(sa.delete(segment_state).where(segment_state.c.user_id == user_id))

    # Memberships ----------------------------------------------------------------------------------

    def upsert_members(self, members: Sequence[Membership]) -> None:
        if not members:
            return
        rows = [
            {"segment_key": m.segment, "user_id": m.user_id, "entity": m.entity, "since_us": m.since_us,
             "data": orjson.dumps(m.data).decode(), "reason": m.reason}
            for m in members
        ]
        stmt = insert_for(self._dialect, segment_members)
        stmt = stmt.on_conflict_do_update(
            index_elements=["segment_key", "user_id", "entity"],
            set_={"since_us": stmt.excluded.since_us, "data": stmt.excluded.data, "reason": stmt.excluded.reason},
        )
        self._conn.execute(stmt, rows)

    def delete_members(self, keys: Sequence[tuple[str, str, str]]) -> None:
        for segment, user_id, entity in keys:
            self._conn.execute(
                sa.delete(segment_members).where(
                    segment_members.c.segment_key == segment,
                    segment_members.c.user_id == user_id,
                    segment_members.c.entity == entity,
                )
            )

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

    def sizes(self) -> dict[str, int]:
        rows = self._conn.execute(
            sa.select(segment_members.c.segment_key, sa.func.count(sa.distinct(segment_members.c.user_id)))
            .group_by(segment_members.c.segment_key)
        )
        return {key: int(n) for key, n in rows}

    def clear_segment(self, segment: str) -> None:
        self._conn.execute(sa.delete(segment_members).where(segment_members.c.segment_key == segment))

    # Transitions ----------------------------------------------------------------------------------

    def record_transitions(self, transitions: Sequence[Transition]) -> None:
        if not transitions:
            return
        self._conn.execute(
            segment_transitions.insert(),
            [
                {"segment_key": t.segment, "user_id": t.user_id, "entity": t.entity, "kind": t.kind,
                 "at_us": t.at_us, "reason": t.reason, "data": orjson.dumps(t.data).decode()}
                for t in transitions
            ],
        )

    def transitions(self, *, user_id: str | None = None, segment: str | None = None,
                    limit: int = 1000) -> list[Transition]:
        query = sa.select(segment_transitions).order_by(segment_transitions.c.id).limit(limit)
        if user_id is not None:
            query = query.where(segment_transitions.c.user_id == user_id)
        if segment is not None:
            query = query.where(segment_transitions.c.segment_key == segment)
        return [
            Transition(r["segment_key"], r["user_id"], r["entity"], r["kind"], r["at_us"], r["reason"],
                       orjson.loads(r["data"]))
            for r in self._conn.execute(query).mappings()
        ]


def _membership(row: Any) -> Membership:
    return Membership(row["segment_key"], row["user_id"], row["entity"], row["since_us"],
                      orjson.loads(row["data"]), row["reason"])

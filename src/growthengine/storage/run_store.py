"""Flow versions and runs (enrollments)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.storage.bulk_rows import write_rows
from growthengine.storage.dialects import insert_for
from growthengine.storage.driver_cursor import driver_rows
from growthengine.storage.event_log import in_list, list_params
from growthengine.storage.flow_schema import flow_runs, flow_versions

_INSERT_COLUMNS = ("id", "flow_key", "version", "user_id", "entity", "status", "cursor", "trigger_us", "entered_us",
                   "updated_us", "context", "exit_reason")
_INSERT_HEAD = f"INSERT INTO flow_runs ({', '.join(_INSERT_COLUMNS)})"
_INSERT_TYPES = ("bigint", "text", "text", "text", "text", "text", "text", "bigint", "bigint", "bigint", "text", "text")
_SELECT_ACTIVE = (f"SELECT {', '.join(_INSERT_COLUMNS)} FROM flow_runs "  # noqa: S608 (constant names)
                  "WHERE status = 'active' AND ")
_SAVE_SQLITE = "UPDATE flow_runs SET status = ?, cursor = ?, updated_us = ?, exit_reason = ?, context = ? WHERE id = ?"
_SAVE_PG = ("UPDATE flow_runs AS r SET status = v.status, cursor = v.cursor, updated_us = v.updated_us, "
            "exit_reason = v.exit_reason, context = v.context "
            "FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::text[], %b::text[], %b::bigint[]) "
            "AS v(status, cursor, updated_us, exit_reason, context, id) WHERE r.id = v.id")


@dataclass(slots=True)
class Run:
    id: int
    flow: str
    version: str
    user_id: str
    entity: str
    status: str  # active | completed | exited
    cursor: str  # the next step to take, as a path ("3", "2/then/0"); "" when done
    trigger_us: int
    entered_us: int
    updated_us: int
    context: dict[str, Any]
    exit_reason: str | None = None


class RunStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def save_version(self, flow: str, version: str, definition: dict[str, Any], at_us: int) -> None:
        stmt = insert_for(self._dialect, flow_versions).on_conflict_do_nothing(index_elements=["flow_key", "version"])
        self._conn.execute(stmt, {"flow_key": flow, "version": version, "created_us": at_us,
                                  "definition": orjson.dumps(definition, default=str).decode()})

    def published(self, flows: Sequence[str]) -> set[str]:
        """Which of these flows were ever published (any version of theirs recorded)."""
        if not flows:
            return set()
        rows = self._conn.execute(sa.select(flow_versions.c.flow_key).distinct()
                                  .where(flow_versions.c.flow_key.in_(list(flows))))
        return {r[0] for r in rows}

    def version(self, flow: str, version: str) -> dict[str, Any] | None:
        value = self._conn.execute(
            sa.select(flow_versions.c.definition).where(flow_versions.c.flow_key == flow,
                                                        flow_versions.c.version == version)
        ).scalar()
        return orjson.loads(value) if value is not None else None

    def live_entities(self, flow: str, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (user, entity) pairs already have a live run of this flow."""
        found: set[tuple[str, str]] = set()
        users = list(dict.fromkeys(u for u, _ in pairs))
        wanted = set(pairs)
        m = "%s" if self._dialect == "postgresql" else "?"
        # Asked for every enrolment batch: plain SQL for the driver (see ``_by_user`` for the flow_key test).
        for start in range(0, len(users), 500):
            chunk = users[start:start + 500]
            sql = (f"SELECT user_id, entity FROM flow_runs WHERE flow_key || '' = {m} AND status = 'active' "  # noqa: S608
                   f"AND {in_list(self._dialect, 'user_id', len(chunk))}")
            rows = driver_rows(self._conn, sql, (flow, *list_params(self._dialect, chunk)))
            found.update((u, e) for u, e in rows if (u, e) in wanted)
        return found

    def ever_entered(self, flow: str, user_ids: Sequence[str]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        users = list(dict.fromkeys(user_ids))
        for start in range(0, len(users), 500):
            rows = self._conn.execute(
                sa.select(flow_runs.c.user_id, flow_runs.c.entity).where(
                    _by_user(flow), flow_runs.c.user_id.in_(users[start:start + 500]))
            )
            found.update((u, e) for u, e in rows)
        return found

    def reserve_ids(self, count: int) -> list[int]:
        """Ids for ``count`` runs written later in this transaction by :meth:`insert_many` (a batch of new runs is
        taken through its first steps before it is written, once, as that pass leaves it)."""
        if count <= 0:
            return []
        if self._dialect == "postgresql":
            rows = driver_rows(self._conn, "SELECT nextval(pg_get_serial_sequence('flow_runs', 'id')) "
                                           "FROM generate_series(1, %s)", (count,))
            return [int(r[0]) for r in rows]
        # One writer on SQLite: the ids after the largest stored (the runs are inserted in this transaction).
        first = int(driver_rows(self._conn, "SELECT coalesce(max(id), 0) FROM flow_runs")[0][0]) + 1
        return list(range(first, first + count))

    def insert_many(self, runs: Sequence[Run]) -> None:
        """Write new runs with the ids :meth:`reserve_ids` gave them: one statement, plain SQL for the driver."""
        dumps = orjson.dumps
        write_rows(self._conn, self._dialect, _INSERT_HEAD, "", _INSERT_TYPES, [
            (r.id, r.flow, r.version, r.user_id, r.entity, r.status, r.cursor, r.trigger_us, r.entered_us,
             r.updated_us, dumps(r.context, default=str).decode(), r.exit_reason) for r in runs])

    def get_many(self, ids: Sequence[int]) -> dict[int, Run]:
        found: dict[int, Run] = {}
        for start in range(0, len(ids), 500):
            query = sa.select(flow_runs).where(flow_runs.c.id.in_(list(ids[start:start + 500])))
            if self._dialect == "postgresql":
                query = query.with_for_update()
            for row in self._conn.execute(query):
                run = _run(row)
                found[run.id] = run
        return found

    def active_for_users(self, user_ids: Sequence[str]) -> list[Run]:
        # Asked for every pipeline batch's users: plain SQL for the driver (SQLAlchemy compiled the expanding IN
        # anew each time).
        runs: list[Run] = []
        users = list(dict.fromkeys(user_ids))
        for start in range(0, len(users), 500):
            chunk = users[start:start + 500]
            sql = _SELECT_ACTIVE + in_list(self._dialect, "user_id", len(chunk))
            runs += [_run(r) for r in driver_rows(self._conn, sql, list_params(self._dialect, chunk))]
        return runs

    def save(self, run: Run) -> None:
        self._conn.execute(
            sa.update(flow_runs).where(flow_runs.c.id == run.id).values(
                status=run.status, cursor=run.cursor, updated_us=run.updated_us, exit_reason=run.exit_reason,
                context=orjson.dumps(run.context, default=str).decode(),
            )
        )

    def save_many(self, runs: Sequence[Run]) -> None:
        if not runs:
            return
        # Plain SQL (a batch of runs per timer group or pipeline batch); the last state of a run given twice wins.
        dumps = orjson.dumps
        last = {r.id: r for r in runs}
        rows = [(r.status, r.cursor, r.updated_us, r.exit_reason, dumps(r.context, default=str).decode(), r.id)
                for r in last.values()]
        if self._dialect == "postgresql":
            self._conn.exec_driver_sql(_SAVE_PG, tuple(list(column) for column in zip(*rows, strict=True)))
        else:
            self._conn.exec_driver_sql(_SAVE_SQLITE, rows)

    def for_user(self, user_id: str) -> list[Run]:
        query = sa.select(flow_runs).where(flow_runs.c.user_id == user_id).order_by(flow_runs.c.id)
        return [_run(r) for r in self._conn.execute(query)]

    def step_counts(self, flow: str) -> dict[tuple[str, str], int]:
        """Live runs per (status, cursor) of a flow."""
        rows = self._conn.execute(
            sa.select(flow_runs.c.status, flow_runs.c.cursor, sa.func.count())
            .where(flow_runs.c.flow_key == flow).group_by(flow_runs.c.status, flow_runs.c.cursor)
        )
        return {(s, c): int(n) for s, c, n in rows}


def _by_user(flow: str) -> sa.ColumnElement[bool]:
    """``flow_key = flow``, written so that no index on ``flow_key`` can serve it.

    The callers look up a few users among all of a flow's runs. Without statistics SQLite would otherwise walk
    ``ix_flow_runs_flow`` over every live run of the flow for each lookup (quadratic when a flow enrolls many users
    one event at a time: 100,000 sellers took minutes); this way it searches ``ix_flow_runs_user`` by user.
    """
    return flow_runs.c.flow_key.op("||")(sa.literal_column("''")) == flow


def _run(row: Sequence[Any]) -> Run:
    """A ``flow_runs`` row, its columns in table order (``_INSERT_COLUMNS``, as ``select(flow_runs)`` gives them)."""
    return Run(id=row[0], flow=row[1], version=row[2], user_id=row[3], entity=row[4], status=row[5], cursor=row[6],
               trigger_us=row[7], entered_us=row[8], updated_us=row[9], context=orjson.loads(row[10]),
               exit_reason=row[11])

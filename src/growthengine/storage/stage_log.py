"""The event log as the stages read it: by cursor, in batches, per partition, never skipping a late commit.

A position is ``(tx_pos, id_pos)``. On SQLite there is one writer at a time, so ids commit in order and ``tx_pos``
is always 0. On PostgreSQL ids from a sequence commit out of order, so every row carries the id of the transaction
that wrote it and the log is read in ``(txid, id)`` order, only below the oldest transaction still running
(``pg_snapshot_xmin``): every transaction below that horizon has ended, and a new one gets a larger id, so nothing
can later appear behind a cursor.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.domain.events import Event
from growthengine.domain.partitions import PARTITIONS, partition_of
from growthengine.storage.bulk_rows import write_rows
from growthengine.storage.driver_cursor import driver_many, driver_rows
from growthengine.storage.event_log import marker

Position = tuple[int, int]
START: Position = (0, 0)
COMMAND = "command"
"""The event type of a per-user command (written by the engine, never accepted from a client)."""

_COMMAND_INSERT = "INSERT INTO events (type, name, user_id, ts_us, received_us, payload, partition)"
_COMMAND_TYPES = ("text", "text", "text", "bigint", "bigint", "text", "smallint")
_SELECT = "SELECT {tx}, id, partition, user_id, type, name, ts_us, payload, message_id, origin FROM events "


_PLANNER_OFF = ("enable_bitmapscan", "enable_seqscan", "enable_sort")
_PLANNER_HOLD = (
    "WITH before AS MATERIALIZED (SELECT "
    + ", ".join(f"current_setting('{n}') AS s{i}" for i, n in enumerate(_PLANNER_OFF))
    + ") SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
    + ", ".join(f"s{i}" for i in range(len(_PLANNER_OFF))) + ", "
    + ", ".join(f"set_config('{n}', 'off', true)" for n in _PLANNER_OFF) + " FROM before")
_PLANNER_RESTORE = "SELECT " + ", ".join(f"set_config('{n}', %s, true)" for n in _PLANNER_OFF)


@contextmanager
def in_log_order(conn: sa.Connection) -> Iterator[int]:
    """PostgreSQL: the horizon (the oldest transaction still running), with the planner held to a ``(txid, id)``
    index walked in order for the statements of the block, then its settings as they were (``SET LOCAL`` would
    last to the end of the transaction; a statement that fails aborts the transaction, and the settings with it).

    A log that grows by thousands of rows a second outruns its statistics (analyzed at most once a minute): for
    the few hundred rows after a cursor PostgreSQL chose a bitmap scan of every row after it and a sort, 132 ms
    for a batch the index read in order gives in 3 ms, so that each read cost as much as the whole backlog."""
    held = conn.exec_driver_sql(_PLANNER_HOLD).first()
    assert held is not None
    yield int(held[0])
    conn.exec_driver_sql(_PLANNER_RESTORE, tuple(held[1:1 + len(_PLANNER_OFF)]))


@dataclass(slots=True, frozen=True)
class LogRow:
    position: Position
    partition: int
    event: Event


class StageLog:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect
        self._m = marker(dialect)

    # Reading ---------------------------------------------------------------------------------------------

    def horizon(self) -> int | None:
        """The oldest transaction id still running (PostgreSQL); ``None`` where writes are serial (SQLite)."""
        if self._dialect != "postgresql":
            return None
        return int(self._conn.exec_driver_sql("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                   .scalar_one())

    def read(self, after: Position, partitions: Sequence[int], limit: int, *, every_partition: bool) -> list[LogRow]:
        """Rows after ``after`` in log order, in ``partitions`` (all of them when ``every_partition``)."""
        if self._dialect == "postgresql":
            with in_log_order(self._conn) as horizon:  # below it: see the module's docstring
                return self._read(after, partitions, limit, every_partition, horizon)
        return self._read(after, partitions, limit, every_partition, None)

    def _read(self, after: Position, partitions: Sequence[int], limit: int, every_partition: bool,
              horizon: int | None) -> list[LogRow]:
        m = self._m
        params: list[Any] = []
        if horizon is not None:
            sql = _SELECT.format(tx="txid") + f"WHERE (txid, id) > ({m}, {m}) AND txid < {m} "
            params += [after[0], after[1], horizon]
            order = "ORDER BY txid, id"
        else:
            sql = _SELECT.format(tx="0") + f"WHERE id > {m} "
            params.append(after[1])
            order = "ORDER BY id"
        if not every_partition:
            if self._dialect == "postgresql":
                sql += "AND partition = ANY(%s) "
                params.append(list(partitions))
            else:
                sql += f"AND partition IN ({','.join('?' * len(partitions))}) "
                params += list(partitions)
        sql += f"{order} LIMIT {int(limit)}"
        loads = orjson.loads
        # Thousands of rows a batch: read by the driver, with no SQLAlchemy row object per row.
        return [LogRow((int(tx_pos), int(row_id)), int(part),
                       Event(user_id, name, ts_us, type_, loads(payload), message_id, row_id, origin))
                for tx_pos, row_id, part, user_id, type_, name, ts_us, payload, message_id, origin
                in driver_rows(self._conn, sql, params)]

    def tail(self) -> Position:
        """The position of the newest row (what a stage caught up with everything has reached)."""
        # Asked after each fired instant: straight to the driver.
        if self._dialect == "postgresql":
            rows = driver_rows(self._conn, "SELECT txid, id FROM events ORDER BY txid DESC, id DESC LIMIT 1")
        else:
            rows = driver_rows(self._conn, "SELECT 0, id FROM events ORDER BY id DESC LIMIT 1")
        return (int(rows[0][0]), int(rows[0][1])) if rows else START

    def backlog(self, stage: str) -> int:
        """How many rows ``stage`` has not applied yet (see :meth:`backlogs`)."""
        return self.backlogs([stage])[stage]

    def backlogs(self, stages: Sequence[str]) -> dict[str, int]:
        """How many rows each of ``stages`` has not applied yet: in each partition, those after that partition's
        cursor (one worker's partitions may be ahead of another's). One pass over the rows after the slowest
        cursor of them all (an index range), so stages that are caught up cost next to nothing however long the
        log; a partition with no cursor yet counts from the start."""
        if not stages:
            return {}
        cursors = self.cursors(stages)
        low = min((min(c.values()) if len(c) >= PARTITIONS else START for c in cursors.values()), default=START)
        m = self._m
        if self._dialect == "postgresql":
            tx_col, bound, params = "e.txid", f"(e.txid, e.id) > ({m}, {m})", [*low]
        else:
            tx_col, bound, params = "0", f"e.id > {m}", [low[1]]
        # The stages' cursors side by side, one row per partition, so that each row is joined once whatever the
        # number of stages (a join per stage cost 2.6 times as much); a missing cursor counts from the start.
        pivot = ", ".join(f"max(tx_pos) FILTER (WHERE stage = {m}) AS t{i}, max(id_pos) FILTER (WHERE stage = {m}) "
                          f"AS i{i}" for i in range(len(stages)))
        counts = ", ".join(f"count(*) FILTER (WHERE ({tx_col}, e.id) > (COALESCE(c.t{i}, -1), COALESCE(c.i{i}, -1)))"
                           for i in range(len(stages)))
        sql = (f"SELECT {counts} FROM events e LEFT JOIN (SELECT partition, {pivot} FROM stage_cursors "
               f"GROUP BY partition) c ON c.partition = e.partition WHERE {bound}")
        row = driver_rows(self._conn, sql, (*(x for stage in stages for x in (stage, stage)), *params))[0]
        return {stage: int(count) for stage, count in zip(stages, row, strict=True)}

    # Cursors ---------------------------------------------------------------------------------------------

    def cursors(self, stages: Sequence[str]) -> dict[str, dict[int, Position]]:
        """Every stored cursor of these stages, by stage and partition (a missing one is at the start)."""
        out: dict[str, dict[int, Position]] = {s: {} for s in stages}
        if not out:
            return out
        # Only these stages' rows (every stage's cursors are 64 rows each; the pipeline asks twice a batch).
        stage_in, params = self._in("stage", list(out))
        rows = driver_rows(self._conn, f"SELECT stage, partition, tx_pos, id_pos FROM stage_cursors WHERE {stage_in}",
                           params)
        for stage, part, tx_pos, id_pos in rows:
            out[stage][int(part)] = (int(tx_pos), int(id_pos))
        return out

    def cursor_times(self) -> dict[str, float]:
        """When each stage last moved (system time, seconds)."""
        rows = self._conn.exec_driver_sql("SELECT stage, max(updated_s) FROM stage_cursors GROUP BY stage")
        return {stage: float(at) for stage, at in rows}

    def advance(self, stages: Sequence[str], partitions: Sequence[int], position: Position, now_s: float,
                known: dict[str, dict[int, Position]]) -> None:
        """Move the cursors of ``stages`` in ``partitions`` to ``position`` (never backwards); ``known`` holds the
        cursors read at the start of the batch (a missing one is created)."""
        if not stages:
            return
        m = self._m
        missing = [(s, p, position[0], position[1], now_s) for s in stages for p in partitions if p not in known[s]]
        if missing:
            self._conn.exec_driver_sql(
                "INSERT INTO stage_cursors (stage, partition, tx_pos, id_pos, updated_s) "
                f"VALUES ({m}, {m}, {m}, {m}, {m}) ON CONFLICT (stage, partition) DO NOTHING", missing)
        stage_in, stage_params = self._in("stage", list(stages))
        part_in, part_params = self._in("partition", list(partitions))
        self._conn.exec_driver_sql(
            f"UPDATE stage_cursors SET tx_pos = {m}, id_pos = {m}, updated_s = {m} WHERE {stage_in} AND {part_in} "
            f"AND (tx_pos, id_pos) < ({m}, {m})",
            (position[0], position[1], now_s, *stage_params, *part_params, position[0], position[1]))

    def _in(self, column: str, values: list[Any]) -> tuple[str, list[Any]]:
        if self._dialect == "postgresql":
            return f"{column} = ANY({self._m})", [values]
        return f"{column} IN ({','.join('?' * len(values))})", values

    # Writing commands ------------------------------------------------------------------------------------

    def append_partition_commands(self, user_id: str, name: str, ts_us: int, payload: dict[str, Any],
                                  partitions: Sequence[int], received_us: int) -> None:
        """Append one command per partition (not per user): each partition's owner applies its own, after every
        earlier row of its partition. The payload carries the partition (``partition``)."""
        dumps = orjson.dumps
        write_rows(self._conn, self._dialect, _COMMAND_INSERT, "", _COMMAND_TYPES, [
            (COMMAND, name, user_id, ts_us, received_us, dumps({**payload, "partition": p}).decode(), p)
            for p in partitions
        ])

    def rewrite_commands(self, payloads: Sequence[tuple[str, int, dict[str, Any]]]) -> None:
        """Replace applied commands' payloads ``(row key, row id, payload)`` (what a page of enrolments keeps once
        its owner applied it: no user's id); other rows are never touched. Each row is found by its primary key
        (``user_id, id`` on PostgreSQL, which has no index on the id alone)."""
        if payloads:
            m = self._m
            dumps = orjson.dumps
            driver_many(self._conn,
                        f"UPDATE events SET payload = {m} WHERE user_id = {m} AND id = {m} AND type = '{COMMAND}'",
                        [(dumps(payload).decode(), key, row_id) for key, row_id, payload in payloads])

    def append_commands(self, commands: Sequence[tuple[str, str, int, dict[str, Any]]], received_us: int) -> None:
        """Append per-user commands ``(user_id, name, ts_us, payload)`` for the owners of those users to apply."""
        if not commands:
            return
        dumps = orjson.dumps
        # A fan-out gives every user's command the same payload object: encoded once (the commands hold them all
        # alive meanwhile, so no two payloads share an id).
        encoded: dict[int, str] = {}
        for *_, payload in commands:
            if id(payload) not in encoded:
                encoded[id(payload)] = dumps(payload).decode()
        # One statement for the lot (a price drop's fan-out is a command per partition, enrolments one per user).
        write_rows(self._conn, self._dialect, _COMMAND_INSERT, "", _COMMAND_TYPES, [
            (COMMAND, name, user_id, ts_us, received_us, encoded[id(payload)], partition_of(user_id))
            for user_id, name, ts_us, payload in commands
        ])

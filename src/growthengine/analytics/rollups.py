"""The KPI rollups, computed per pipeline batch in set-based SQL (``rollup_sql.py``).

Two things move them: rows appended to ``message_events`` (every change of a message; read here by cursor, per
partition, in ``(txid, id)`` order below the PostgreSQL horizon, like the event log) and ``purchase``,
``unsubscribed`` and merge rows of the event log (the ``analytics`` stage hands their users in). Either way the
users concerned are recomputed whole, in SQL: their messages' facts from their newest message events, each of their
purchases and unsubscribes credited to one message (last touch), and the rollups moved by minus what those messages
counted as before plus what they count as now. Recomputing a user is idempotent, so reading a row twice (a retried
batch, a partition changing hands) changes nothing; and each user is recomputed only by the owner of its partition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from growthengine.analytics import rollup_sql as q
from growthengine.analytics.definitions import KpiConfig, hour_of_week, local_day
from growthengine.clock import system_seconds
from growthengine.domain.partitions import ALL_PARTITIONS, partition_of
from growthengine.storage.message_events import positions_after
from growthengine.storage.stage_log import START, Position
from growthengine.storage.unit_of_work import Tx

CURSOR = "kpi_rollups"
"""The name of the rollups' cursors over ``message_events`` (in ``stage_cursors``, one per partition)."""
USERS_PER_STATEMENT = 1000
EVENTS_PER_BATCH = 5_000


class KpiRollups:
    """Keeps the rollup tables equal to :func:`growthengine.analytics.recompute.recompute`."""

    def __init__(self, config: KpiConfig) -> None:
        self.config = config
        self._zone = ZoneInfo(config.timezone)
        self.pending: set[str] = set()

    # The pipeline's tail over message_events ---------------------------------------------------------------

    def mark(self, users: Iterable[str]) -> None:
        """Users whose purchases, unsubscribes or merged history arrived in this batch: recomputed by :meth:`run`
        (once per batch, together with the users of the message changes)."""
        self.pending.update(users)

    def run(self, tx: Tx, partitions: Sequence[int], every_partition: bool) -> int:
        """Recompute the users of the message events after this process's cursors, and the users marked by the
        ``analytics`` stage in this batch; returns the rows read (and users recomputed)."""
        known = tx.log.cursors([CURSOR])
        mine = known[CURSOR]
        start = min((mine.get(p, START) for p in partitions), default=START)
        rows = positions_after(tx.conn, tx.dialect, start, partitions, EVENTS_PER_BATCH,
                               every_partition=every_partition)
        owned = set(partitions)
        marked = {u for u in self.pending if every_partition or partition_of(u) in owned}
        if not rows and not marked:
            self.pending.clear()
            return 0
        users = self._with_messages(tx, marked) | {user for position, partition, user in rows
                                                   if position > mine.get(partition, START)}
        self.recompute_users(tx, users)
        self.pending.clear()
        if rows:
            end: Position = rows[-1][0]
            tx.log.advance([CURSOR], partitions, end, system_seconds(), known)
        return len(rows) + len(marked)

    @staticmethod
    def _with_messages(tx: Tx, users: set[str]) -> set[str]:
        """Those of ``users`` that have a message, a fact or a credit: recomputing anyone else moves nothing (no
        message to credit a purchase or an unsubscribe to), so most purchasers cost one indexed lookup a batch."""
        found: set[str] = set()
        ordered = sorted(users)
        sql = q.statements(tx.dialect)
        for start in range(0, len(ordered), USERS_PER_STATEMENT):
            chunk = q.users_param(tx.dialect, ordered[start:start + USERS_PER_STATEMENT])
            found.update(str(u) for (u,) in tx.conn.execute(sql.users_with_messages, {"users": chunk}))
        return found

    # Recomputing users -----------------------------------------------------------------------------------

    def recompute_users(self, tx: Tx, users: Iterable[str]) -> None:
        """Recompute these users' facts, credits and their share of every rollup. The calendar is filled first and
        every rollup (shared by all workers) is moved once at the end, table by table, each in key order, so that two
        workers doing this at once take their shared locks in the same order."""
        ordered = sorted(set(users))
        if not ordered:
            return
        sql = q.statements(tx.dialect)
        conn = tx.conn
        chunks = self._chunks(tx.dialect, ordered)
        self._fill_calendar(conn, sql, chunks)
        counted: set[str] = set()
        for chunk in chunks:
            counted.update(str(u) for (u,) in conn.execute(sql.users_with_facts, chunk))
        for statement in (*q.DELTA_CREATE, *q.DELTA_CLEAR):
            conn.execute(statement)
        # Users with nothing counted, credited or to credit yet: their new facts are added, nothing taken back (the
        # statements the others run below would find no row of theirs).
        for chunk in self._chunks(tx.dialect, [u for u in ordered if u not in counted]):
            conn.execute(sql.facts, {**chunk, "no": False})
            for statement in sql.delta_after:
                conn.execute(statement, chunk)
        for chunk in self._chunks(tx.dialect, [u for u in ordered if u in counted]):
            for statement in sql.delta_before:
                conn.execute(statement, chunk)
            conn.execute(sql.forget_facts, chunk)
            conn.execute(sql.forget_credits, chunk)
            conn.execute(sql.facts, {**chunk, "no": False})
            window = {**chunk, "window": self.config.window_us}
            conn.execute(sql.credit_purchases, window)
            conn.execute(sql.credit_unsubscribes, window)
            conn.execute(sql.attribute, chunk)
            for statement in sql.delta_after:
                conn.execute(statement, chunk)
        # The shared rollups last, once, table by table in key order (rollup_sql.py): no deadlock between workers.
        for statement in (*q.APPLY_DELTA, *q.DELTA_CLEAR):
            conn.execute(statement)

    @staticmethod
    def _chunks(dialect: str, users: list[str]) -> list[dict[str, object]]:
        return [{"users": q.users_param(dialect, users[i:i + USERS_PER_STATEMENT])}
                for i in range(0, len(users), USERS_PER_STATEMENT)]

    def _fill_calendar(self, conn: sa.Connection, sql: q.RollupStatements, chunks: list[dict[str, object]]) -> None:
        """The local day and hour of every 15 minutes these users' messages count at and were opened in (in bucket
        order)."""
        missing: set[int] = set()
        for chunk in chunks:
            missing.update(int(b) for (b,) in conn.execute(sql.missing_buckets, chunk) if b is not None)
        if not missing:
            return
        rows = [{"bucket": b, "day": local_day(b * q.BUCKET_US, self._zone),
                 "how": hour_of_week(b * q.BUCKET_US, self._zone)} for b in sorted(missing)]
        insert = sa.text("INSERT INTO kpi_calendar (bucket, day, how) VALUES (:bucket, :day, :how) "
                         "ON CONFLICT (bucket) DO NOTHING")
        conn.execute(insert, rows)

    # Rebuilding ------------------------------------------------------------------------------------------

    def rebuild(self, tx: Tx) -> int:
        """Forget the rollups and compute them again from every message event (after a change of settings);
        returns how many users were counted."""
        for table in (*q.ROLLUP_TABLES, "kpi_messages", "kpi_credits", "kpi_calendar"):
            tx.conn.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 (names from the schema)
        users = [str(u) for (u,) in tx.conn.execute(sa.text("SELECT DISTINCT user_id FROM message_events"))]
        self.recompute_users(tx, users)
        tail = tx.conn.execute(sa.text(
            "SELECT txid, id FROM message_events ORDER BY txid DESC, id DESC LIMIT 1" if tx.dialect == "postgresql"
            else "SELECT 0, id FROM message_events ORDER BY id DESC LIMIT 1")).first()
        if tail is not None:
            tx.log.advance([CURSOR], list(ALL_PARTITIONS), (int(tail[0]), int(tail[1])), system_seconds(),
                           tx.log.cursors([CURSOR]))
        return len(users)


def today(config: KpiConfig, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(config.timezone)).date()

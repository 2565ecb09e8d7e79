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

    # The pipeline's tail over message_events ---------------------------------------------------------------

    def run(self, tx: Tx, partitions: Sequence[int], every_partition: bool) -> int:
        """Recompute the users of the message events after this process's cursors; returns the rows read."""
        known = tx.log.cursors([CURSOR])
        mine = known[CURSOR]
        start = min((mine.get(p, START) for p in partitions), default=START)
        rows = positions_after(tx.conn, tx.dialect, start, partitions, EVENTS_PER_BATCH,
                               every_partition=every_partition)
        if not rows:
            return 0
        users = {user for position, partition, user in rows if position > mine.get(partition, START)}
        self.recompute_users(tx, users)
        end: Position = rows[-1][0]
        tx.log.advance([CURSOR], partitions, end, system_seconds(), known)
        return len(rows)

    # Recomputing users -----------------------------------------------------------------------------------

    def recompute_users(self, tx: Tx, users: Iterable[str]) -> None:
        ordered = sorted(set(users))
        credit_purchases, credit_unsubscribes = q.credits_sql(tx.dialect)
        if not ordered:
            return
        conn = tx.conn
        conn.execute(q.DELTA_CREATE)
        for start in range(0, len(ordered), USERS_PER_STATEMENT):
            chunk = {"users": ordered[start:start + USERS_PER_STATEMENT]}
            self._fill_calendar(conn, chunk["users"])
            conn.execute(q.DELTA_CLEAR)
            conn.execute(q.DELTA_BEFORE, chunk)
            for statement in q.SUBTRACT:
                conn.execute(statement, chunk)
            conn.execute(q.FORGET_FACTS, chunk)
            conn.execute(q.FORGET_CREDITS, chunk)
            conn.execute(q.FACTS, {**chunk, "no": False})
            window = {**chunk, "window": self.config.window_us}
            conn.execute(credit_purchases, window)
            conn.execute(credit_unsubscribes, window)
            conn.execute(q.ATTRIBUTE, chunk)
            conn.execute(q.DELTA_AFTER, chunk)
            for statement in q.ADD:
                conn.execute(statement, chunk)
            for statement in q.APPLY_DELTA:
                conn.execute(statement)
        conn.execute(q.DELTA_CLEAR)

    def _fill_calendar(self, conn: sa.Connection, users: list[str]) -> None:
        """The local day and hour of every 15 minutes these users' messages count at and were opened in."""
        missing = [int(b) for (b,) in conn.execute(q.MISSING_BUCKETS, {"users": users}) if b is not None]
        if not missing:
            return
        rows = [{"bucket": b, "day": local_day(b * q.BUCKET_US, self._zone),
                 "how": hour_of_week(b * q.BUCKET_US, self._zone)} for b in missing]
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
            every = list(range(64))
            tx.log.advance([CURSOR], every, (int(tail[0]), int(tail[1])), system_seconds(),
                           tx.log.cursors([CURSOR]))
        return len(users)


def today(config: KpiConfig, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(config.timezone)).date()

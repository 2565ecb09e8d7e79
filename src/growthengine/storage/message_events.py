"""The insert-only history of the send ledger: every change of a message (its insert and every update) appends its
state after the change, in the same transaction. The KPI rollups are computed from these rows, per batch, in SQL
(``analytics/rollups.py``); nothing here counts anything.

Rows are keyed by user first (the key ``(user_id, id)``, ``ix_message_events_user``), as every hot table is, so
that the table can later be distributed by user id (``user_keys.py``). On PostgreSQL each row carries the id of
the transaction that wrote it, so that a reader can take rows in ``(txid, id)`` order below ``pg_snapshot_xmin``
and never skip one that commits late.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.domain.messages import Message
from growthengine.domain.partitions import partition_of
from growthengine.storage.bulk_rows import write_rows
from growthengine.storage.driver_cursor import driver_rows
from growthengine.storage.flow_schema import messages
from growthengine.storage.schema import RowId, metadata
from growthengine.storage.stage_log import in_log_order

message_events = sa.Table(
    "message_events",
    metadata,
    sa.Column("id", RowId, autoincrement=True),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("message_id", sa.String(40), nullable=False),
    sa.Column("partition", sa.SmallInteger, nullable=False),
    sa.Column("flow_key", sa.String(100), nullable=False),
    sa.Column("step", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("variant", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("scheduled_us", sa.BigInteger, nullable=False),
    sa.Column("sent_us", sa.BigInteger, nullable=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),  # when the change was made (the message's updated_us)
    sa.Column("opened_us", sa.BigInteger, nullable=True),  # when it was opened (or clicked), once it has been
    sa.PrimaryKeyConstraint("user_id", "id", name="message_events_pkey"),
    sa.Index("ix_message_events_user", "user_id", "message_id", "id"),
)

_COPIED = ("user_id", "flow_key", "step", "channel", "kind", "status", "scheduled_us", "sent_us")


def opened_at(status: str, data: Any, updated_us: int) -> int | None:
    """When an opened or clicked message was opened: its recorded ``opened_us`` or ``clicked_us``, else the time of
    the change (``None`` while it is not opened)."""
    if status not in ("opened", "clicked"):
        return None
    stamps = [data.get("opened_us"), data.get("clicked_us")] if isinstance(data, dict) else []
    return next((v for v in stamps if isinstance(v, int) and not isinstance(v, bool) and v), updated_us)


_INSERTED_COLUMNS = ("user_id", "message_id", "partition", "flow_key", "step", "channel", "variant", "kind", "status",
                     "reason", "scheduled_us", "sent_us", "at_us", "opened_us")
_INSERTED = (f"INSERT INTO message_events ({', '.join(_INSERTED_COLUMNS)})", "",
             ("text", "text", "smallint", "text", "text", "text", "text", "text", "text", "text", "bigint", "bigint",
              "bigint", "bigint"))


def append_inserted(conn: sa.Connection, items: Sequence[Message]) -> None:
    """The events of messages written to the ledger: one plain statement (``bulk_rows.write_rows``)."""
    if items:
        rows = [(m.user_id, m.id, partition_of(m.user_id), m.flow, m.step, m.channel, m.variant or "", m.kind,
                 m.status, m.reason or "", m.scheduled_us, m.sent_us, m.updated_us,
                 opened_at(m.status, m.data, m.updated_us)) for m in items]
        write_rows(conn, conn.dialect.name, *_INSERTED, rows)


def append_updated(conn: sa.Connection, message_ids: Sequence[str]) -> None:
    """The events of updated messages: each row as it is now."""
    m = messages.c
    for start in range(0, len(message_ids), 500):
        rows = conn.execute(sa.select(*[m[c] for c in _COPIED], m.id, m.variant, m.reason, m.updated_us, m.data)
                            .where(m.id.in_(list(message_ids[start:start + 500])))).mappings().all()
        events = []
        for row in rows:
            status, updated = str(row["status"]), int(row["updated_us"])
            data = orjson.loads(row["data"]) if row["data"] else {}
            events.append({**{c: row[c] for c in _COPIED}, "message_id": row["id"],
                           "partition": partition_of(row["user_id"]), "variant": row["variant"] or "",
                           "reason": row["reason"] or "", "at_us": updated,
                           "opened_us": opened_at(status, data, updated)})
        if events:
            conn.execute(sa.insert(message_events), events)


def positions_after(conn: sa.Connection, dialect: str, after: tuple[int, int], partitions: Sequence[int], limit: int,
                    *, every_partition: bool) -> list[tuple[tuple[int, int], int, str]]:
    """``(position, partition, user_id)`` of the rows after ``after`` in ``(txid, id)`` order, in ``partitions``
    (all of them when ``every_partition``); on PostgreSQL only below the oldest running transaction."""
    if dialect == "postgresql":
        sql = "SELECT txid, id, partition, user_id FROM message_events WHERE (txid, id) > (%s, %s) AND txid < %s "
        with in_log_order(conn) as horizon:  # (the same index order as the event log's read)
            params: list[Any] = [after[0], after[1], horizon]
            if not every_partition:
                sql += "AND partition = ANY(%s) "
                params.append(list(partitions))
            sql += f"ORDER BY txid, id LIMIT {int(limit)}"
            return [((int(t), int(i)), int(p), str(u)) for t, i, p, u in conn.exec_driver_sql(sql, tuple(params))]
    else:
        sql = "SELECT 0, id, partition, user_id FROM message_events WHERE id > ? "
        params = [after[1]]
        if not every_partition:
            sql += f"AND partition IN ({','.join('?' * len(partitions))}) "
            params += list(partitions)
        sql += f"ORDER BY id LIMIT {int(limit)}"
    return [((int(t), int(i)), int(p), str(u)) for t, i, p, u in driver_rows(conn, sql, params)]

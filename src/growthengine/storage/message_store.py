"""The send ledger (messages) and the local outbox.

:meth:`MessageStore.add` and :meth:`MessageStore.update` are the ledger's only writers; each appends the changed
messages' new state to ``message_events`` (insert-only) in the same transaction, which is what the KPI rollups read.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.domain.messages import Message
from growthengine.storage.bulk_rows import write_rows
from growthengine.storage.driver_cursor import driver_rows
from growthengine.storage.event_log import in_list, list_params
from growthengine.storage.flow_schema import messages, outbox
from growthengine.storage.message_events import append_inserted, append_updated
from growthengine.storage.pipeline_schema import pipeline_workers, provider_calls

_FIELDS = [c.name for c in messages.columns if c.name not in ("seq", "flow_key", "data")]
# A price drop writes a ledger row per favoriter: the insert is plain SQL for the driver, as in the event log (the
# same on both databases but for the parameter marker), built from the table's own column names (``noqa: S608``).
_FIELD_VALUES = operator.attrgetter(*_FIELDS)  # a message's values of _FIELDS, as a tuple
_INSERT_COLUMNS = (*_FIELDS, "flow_key", "data")
_INSERT = (
    f"INSERT INTO messages ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['{m}'] * len(_INSERT_COLUMNS))}) ON CONFLICT (id) DO NOTHING"
)

_OUTBOX = ("INSERT INTO outbox (message_id, channel, provider, payload, created_us, state, attempts, next_us)",
           "ON CONFLICT (message_id) DO NOTHING",
           ("text", "text", "text", "text", "bigint", "text", "integer", "bigint"))


class MessageStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def add(self, items: Sequence[Message], *, checked: bool = False) -> list[Message]:
        """Write messages to the ledger; a message whose id is already there is not written again (``checked``:
        the caller already left those out, in this transaction, with :meth:`existing_ids`).

        Returns the messages that were new.
        """
        if not items:
            return []
        existing = set() if checked else self.existing_ids([m.id for m in items])
        fresh = [m for m in items if m.id not in existing]
        if fresh:
            sql = _INSERT.format(m="%s" if self._dialect == "postgresql" else "?")
            dumps = orjson.dumps
            values = _FIELD_VALUES
            self._conn.exec_driver_sql(sql, [(*values(m), m.flow, dumps(m.data).decode()) for m in fresh])
            append_inserted(self._conn, fresh)  # the message-event history, in the same transaction
        return fresh

    def existing_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):  # a batch's ledger rows: plain SQL for the driver
            chunk = list(ids[start:start + 500])
            sql = "SELECT id FROM messages WHERE " + in_list(self._dialect, "id", len(chunk))  # noqa: S608 (markers)
            found.update(r[0] for r in driver_rows(self._conn, sql, list_params(self._dialect, chunk)))
        return found

    def get(self, message_id: str) -> Message | None:
        row = self._conn.execute(sa.select(messages).where(messages.c.id == message_id)).mappings().first()
        return _message(row) if row else None

    def get_many(self, ids: Sequence[str]) -> dict[str, Message]:
        found: dict[str, Message] = {}
        for start in range(0, len(ids), 500):
            query = sa.select(messages).where(messages.c.id.in_(list(ids[start:start + 500])))
            for row in self._conn.execute(query).mappings():
                found[row["id"]] = _message(row)
        return found

    def update(self, message_id: str, **values: Any) -> None:
        if "data" in values:
            values["data"] = orjson.dumps(values["data"]).decode()
        self._conn.execute(sa.update(messages).where(messages.c.id == message_id).values(**values))
        append_updated(self._conn, [message_id])

    def query(self, *, user_id: str | None = None, flow: str | None = None, channel: str | None = None,
              status: str | None = None, after_seq: int | None = None, limit: int = 100) -> list[Message]:
        """Messages oldest first (by when they were decided), filtered, after a cursor."""
        query = sa.select(messages).order_by(messages.c.seq).limit(limit)
        if user_id is not None:
            query = query.where(messages.c.user_id == user_id)
        if flow is not None:
            query = query.where(messages.c.flow_key == flow)
        if channel is not None:
            query = query.where(messages.c.channel == channel)
        if status is not None:
            query = query.where(messages.c.status == status)
        if after_seq is not None:
            query = query.where(messages.c.seq > after_seq)
        return [_message(r) for r in self._conn.execute(query).mappings()]

    def for_run(self, run_id: int, statuses: Sequence[str] | None = None) -> list[Message]:
        query = sa.select(messages).where(messages.c.run_id == run_id).order_by(messages.c.seq)
        if statuses is not None:
            query = query.where(messages.c.status.in_(list(statuses)))
        return [_message(r) for r in self._conn.execute(query).mappings()]

    def sent_since(self, user_id: str, channel: str, kind: str, since_us: int) -> list[Message]:
        """Messages of this kind that went out to the user on the channel since an instant (frequency caps)."""
        query = sa.select(messages).where(
            messages.c.user_id == user_id, messages.c.channel == channel, messages.c.kind == kind,
            messages.c.sent_us.is_not(None), messages.c.sent_us >= since_us,
        )
        return [_message(r) for r in self._conn.execute(query).mappings()]

    def sent_times(self, user_ids: Sequence[str], channel: str, kind: str,
                   since_us: int) -> list[tuple[str, int, str]]:
        """(user, sent time, message id) of what went out to these users on the channel since an instant."""
        found: list[tuple[str, int, str]] = []
        m = "%s" if self._dialect == "postgresql" else "?"
        for start in range(0, len(user_ids), 500):  # a batch's cap history: plain SQL for the driver
            chunk = list(user_ids[start:start + 500])
            sql = ("SELECT user_id, sent_us, id FROM messages WHERE "  # noqa: S608 (constant names and markers)
                   f"{in_list(self._dialect, 'user_id', len(chunk))} AND channel = {m} AND kind = {m} "
                   f"AND sent_us IS NOT NULL AND sent_us >= {m}")
            rows = driver_rows(self._conn, sql, (*list_params(self._dialect, chunk), channel, kind, since_us))
            found += [(u, int(t), i) for u, t, i in rows]
        return found

    def to_outbox_many(self, rows: Sequence[dict[str, Any]], *, pending: bool = False) -> None:
        """Many outbox rows at once (``message_id, channel, provider, payload, created_us``); one per message.

        ``pending`` rows wait for the delivery worker (a real provider, called after the commit); the others are
        the local outbox, delivered by being written."""
        if not rows:
            return
        dumps, state = orjson.dumps, "pending" if pending else "done"
        write_rows(self._conn, self._dialect, *_OUTBOX, [
            (r["message_id"], r["channel"], r["provider"], dumps(r["payload"]).decode(), r["created_us"], state, 0,
             r["created_us"] if pending else None) for r in rows])

    def counts(self) -> dict[str, int]:
        rows = self._conn.execute(sa.select(messages.c.status, sa.func.count()).group_by(messages.c.status))
        return {status: int(n) for status, n in rows}

    def step_counts(self, flow: str) -> dict[tuple[str, str], int]:
        """A flow's messages per (step, status)."""
        rows = self._conn.execute(sa.select(messages.c.step, messages.c.status, sa.func.count())
                                  .where(messages.c.flow_key == flow)
                                  .group_by(messages.c.step, messages.c.status))
        return {(step, status): int(n) for step, status, n in rows}

    # Outbox ---------------------------------------------------------------------------------------

    def claim_pending(self, now_us: int, system_s: float, *, limit: int, lease_s: float, claimer: str,
                      silent_s: float) -> list[dict[str, Any]]:
        """Pending deliveries that are due (their business time has come, and any retry wait or lease is over in
        system time), leased to ``claimer`` for ``lease_s`` (other workers skip them on PostgreSQL).

        A lease held by another worker ends early when that worker has gone: claimed at least ``silent_s`` ago by
        a worker without a heartbeat in the last ``silent_s`` (``pipeline_workers``; a worker killed mid-send), so
        its unsent messages go within about twice ``silent_s`` instead of at the end of the lease."""
        live = sa.select(pipeline_workers.c.worker_id).where(pipeline_workers.c.heartbeat_s >= system_s - silent_s)
        gone = sa.and_(outbox.c.claimed_by.is_not(None), outbox.c.claimed_by != claimer,
                       outbox.c.retry_at_s <= system_s + lease_s - silent_s, outbox.c.claimed_by.not_in(live))
        query = (sa.select(outbox).where(outbox.c.state == "pending", outbox.c.next_us <= now_us,
                                         sa.or_(outbox.c.retry_at_s.is_(None), outbox.c.retry_at_s <= system_s, gone))
                 .order_by(outbox.c.next_us, outbox.c.id).limit(limit))
        if self._dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = [{**{str(k): v for k, v in r.items()}, "payload": orjson.loads(r["payload"])}
                for r in self._conn.execute(query).mappings()]
        if rows:
            self._conn.execute(sa.update(outbox).where(outbox.c.id.in_([r["id"] for r in rows]))
                               .values(retry_at_s=system_s + lease_s, attempts=outbox.c.attempts + 1,
                                       claimed_by=claimer))
        return rows

    def record_provider_call(self, provider: str, outcome: str, latency_s: float, at_s: float) -> None:
        """One call to a channel provider, as ``/metrics`` counts it (insert-only)."""
        self._conn.execute(sa.insert(provider_calls).values(provider=provider, outcome=outcome, latency_s=latency_s,
                                                            at_s=at_s))

    def settle(self, outbox_id: int, state: str, retry_at_s: float | None = None) -> None:
        """Done, failed, or pending again (a retry that may go at ``retry_at_s``, system time)."""
        self._conn.execute(sa.update(outbox).where(outbox.c.id == outbox_id)
                           .values(state=state, retry_at_s=retry_at_s, claimed_by=None))

    def outbox(self, *, channel: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        query = sa.select(outbox).order_by(outbox.c.id).limit(limit)
        if channel is not None:
            query = query.where(outbox.c.channel == channel)
        return [{**{str(k): v for k, v in r.items()}, "payload": orjson.loads(r["payload"])}
                for r in self._conn.execute(query).mappings()]


def _message(row: Any) -> Message:
    return Message(
        seq=row["seq"], id=row["id"], run_id=row["run_id"], user_id=row["user_id"], flow=row["flow_key"],
        step=row["step"], channel=row["channel"], kind=row["kind"], status=row["status"], reason=row["reason"],
        priority=row["priority"], scheduled_us=row["scheduled_us"], sent_us=row["sent_us"],
        expires_us=row["expires_us"], updated_us=row["updated_us"], title=row["title"], subject=row["subject"],
        body=row["body"], html=row["html"], image_url=row["image_url"], variant=row["variant"],
        coupon=row["coupon"], data=orjson.loads(row["data"]),
    )

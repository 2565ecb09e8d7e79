"""Recorded calls of flow runs to other services (activities): pending until a worker makes the call outside any
transaction, then done (with the result) or failed (with the error)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.storage.schema import metadata

flow_activities = sa.Table(
    "flow_activities",
    metadata,
    sa.Column("run_id", sa.BigInteger, nullable=False),
    sa.Column("step", sa.String(200), nullable=False),
    sa.Column("user_id", sa.String(300), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_s", sa.Float, nullable=False, default=0.0),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("user_id", "run_id", "step", name="flow_activities_pkey"),
    sa.Index("ix_flow_activities_run", "run_id", "step"),
    sa.Index("ix_flow_activities_status", "status", "lease_s"),
)


@dataclass(slots=True)
class Activity:
    run_id: int
    step: str
    user_id: str
    kind: str
    request: dict[str, Any]
    status: str
    result: Any = None
    error: str | None = None
    attempts: int = 0


class ActivityStore:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def get(self, run_id: int, step: str) -> Activity | None:
        row = self._conn.execute(sa.select(flow_activities).where(
            flow_activities.c.run_id == run_id, flow_activities.c.step == step)).mappings().first()
        return _activity(row) if row else None

    def record(self, run_id: int, step: str, user_id: str, kind: str, request: dict[str, Any], now_us: int) -> None:
        """A call to make (once: recording the same step again changes nothing)."""
        from growthengine.storage.dialects import insert_for

        stmt = insert_for(self._dialect, flow_activities).on_conflict_do_nothing(
            index_elements=["user_id", "run_id", "step"])
        self._conn.execute(stmt, {"run_id": run_id, "step": step, "user_id": user_id, "kind": kind,
                                  "request": orjson.dumps(request).decode(), "status": "pending", "attempts": 0,
                                  "lease_s": 0.0, "created_us": now_us})

    def claim(self, now_s: float, lease_s: float, limit: int) -> list[Activity]:
        """Pending calls whose lease is free, leased to this worker (others skip them on PostgreSQL)."""
        query = (sa.select(flow_activities)
                 .where(flow_activities.c.status == "pending", flow_activities.c.lease_s <= now_s)
                 .order_by(flow_activities.c.created_us).limit(limit))
        if self._dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        found = [_activity(r) for r in self._conn.execute(query).mappings()]
        for a in found:
            self._conn.execute(sa.update(flow_activities).where(
                flow_activities.c.user_id == a.user_id, flow_activities.c.run_id == a.run_id,
                flow_activities.c.step == a.step,
            ).values(lease_s=now_s + lease_s, attempts=flow_activities.c.attempts + 1))
        return found

    def finish(self, activity: Activity, *, result: Any = None, error: str | None = None) -> bool:
        """Record the answer; False when the call is no longer pending (its run is gone: an erased user)."""
        status = "failed" if error is not None else "done"
        updated = self._conn.execute(sa.update(flow_activities).where(
            flow_activities.c.user_id == activity.user_id, flow_activities.c.run_id == activity.run_id,
            flow_activities.c.step == activity.step,
            flow_activities.c.status == "pending",
        ).values(status=status, result=orjson.dumps(result).decode() if result is not None else None, error=error))
        return bool(updated.rowcount)

    def pending_count(self) -> int:
        query = sa.select(sa.func.count()).select_from(flow_activities).where(flow_activities.c.status == "pending")
        return int(self._conn.execute(query).scalar_one())


def _activity(row: Any) -> Activity:
    return Activity(run_id=int(row["run_id"]), step=row["step"], user_id=row["user_id"], kind=row["kind"],
                    request=orjson.loads(row["request"]), status=row["status"],
                    result=orjson.loads(row["result"]) if row["result"] is not None else None, error=row["error"],
                    attempts=int(row["attempts"]))

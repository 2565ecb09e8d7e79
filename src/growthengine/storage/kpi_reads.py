"""Reading the KPI rollups and the analytics tables: small grouped sums, never a scan of messages or events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from growthengine.storage.analytics_schema import (
    KPI_COUNTERS,
    kpi_daily,
    kpi_open_hours,
    kpi_reasons,
    segment_size_history,
)
from growthengine.storage.dialects import insert_for
from growthengine.storage.flow_schema import messages

GROUPS = {"flow": "flow_key", "step": "step", "channel": "channel", "variant": "variant", "day": "day",
          "kind": "kind"}


class KpiReads:
    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect

    def sums(self, day_from: str, day_to: str, *, flow: str | None = None,
             by: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Counter totals over ``[day_from, day_to]`` (ISO local dates), grouped by ``by`` (names of GROUPS).

        Each row also has ``push_sent``, ``push_opened``, ``email_sent`` and ``email_opened`` (open rates are
        per channel).
        """
        groups = [kpi_daily.c[GROUPS[name]] for name in by]
        totals = [sa.func.coalesce(sa.func.sum(kpi_daily.c[c]), 0).label(c) for c in KPI_COUNTERS]
        for channel in ("push", "email"):
            for counter in ("sent", "opened"):
                value = sa.case((kpi_daily.c.channel == channel, kpi_daily.c[counter]), else_=0)
                totals.append(sa.func.coalesce(sa.func.sum(value), 0).label(f"{channel}_{counter}"))
        query = sa.select(*groups, *totals).where(kpi_daily.c.day >= day_from, kpi_daily.c.day <= day_to)
        if flow is not None:
            query = query.where(kpi_daily.c.flow_key == flow)
        if groups:
            query = query.group_by(*groups).order_by(*groups)
        out = []
        for row in self._conn.execute(query).mappings():
            item = {name: row[GROUPS[name]] for name in by}
            item.update({k: int(row[k]) for k in row if k not in item and k not in GROUPS.values()})
            if not groups or item["decided"]:
                out.append(item)
        return out

    def reasons(self, day_from: str, day_to: str, *, flow: str | None = None) -> list[dict[str, Any]]:
        """Messages held, moved, suppressed, failed or cancelled, by flow, step, channel, status and rule."""
        cols = [kpi_reasons.c.flow_key, kpi_reasons.c.step, kpi_reasons.c.channel, kpi_reasons.c.status,
                kpi_reasons.c.reason]
        query = (sa.select(*cols, sa.func.sum(kpi_reasons.c.n).label("n"))
                 .where(kpi_reasons.c.day >= day_from, kpi_reasons.c.day <= day_to)
                 .group_by(*cols).order_by(*cols))
        if flow is not None:
            query = query.where(kpi_reasons.c.flow_key == flow)
        return [{"flow": r["flow_key"], "step": r["step"], "channel": r["channel"], "status": r["status"],
                 "reason": r["reason"], "n": int(r["n"])}
                for r in self._conn.execute(query).mappings() if r["n"]]

    def open_hours(self, *, flow: str | None = None, channel: str | None = None) -> dict[int, int]:
        """Opens by local hour of the week (0 = Monday 00:00)."""
        query = sa.select(kpi_open_hours.c.how, sa.func.sum(kpi_open_hours.c.n)).group_by(kpi_open_hours.c.how)
        if flow is not None:
            query = query.where(kpi_open_hours.c.flow_key == flow)
        if channel is not None:
            query = query.where(kpi_open_hours.c.channel == channel)
        return {int(how): int(n) for how, n in self._conn.execute(query) if n}

    # Segment sizes over time ----------------------------------------------------------------------------

    def snapshot_segments(self, day: str, sizes: dict[str, int], at_us: int) -> None:
        """Record today's sizes (a later snapshot the same day replaces the earlier one)."""
        if not sizes:
            return
        stmt = insert_for(self._dialect, segment_size_history)
        stmt = stmt.on_conflict_do_update(index_elements=["day", "segment_key"],
                                          set_={"size": stmt.excluded.size, "taken_us": stmt.excluded.taken_us})
        self._conn.execute(stmt, [{"day": day, "segment_key": k, "size": int(n), "taken_us": at_us}
                                  for k, n in sorted(sizes.items())])

    def segment_history(self, day_from: str, day_to: str) -> list[dict[str, Any]]:
        query = (sa.select(segment_size_history)
                 .where(segment_size_history.c.day >= day_from, segment_size_history.c.day <= day_to)
                 .order_by(segment_size_history.c.day, segment_size_history.c.segment_key))
        return [{"day": r["day"], "segment": r["segment_key"], "size": int(r["size"])}
                for r in self._conn.execute(query).mappings()]

    # The message explorer -------------------------------------------------------------------------------

    def explore(self, *, user_id: str | None = None, flow: str | None = None, channel: str | None = None,
                status: str | None = None, before_seq: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Ledger rows, newest first, filtered (each filter is served by an index on the ledger)."""
        query = sa.select(messages).order_by(messages.c.seq.desc()).limit(limit)
        if user_id:
            query = query.where(messages.c.user_id == user_id)
        if flow:
            query = query.where(messages.c.flow_key == flow)
        if channel:
            query = query.where(messages.c.channel == channel)
        if status:
            query = query.where(messages.c.status == status)
        if before_seq is not None:
            query = query.where(messages.c.seq < before_seq)
        return [dict(r) for r in self._conn.execute(query).mappings()]

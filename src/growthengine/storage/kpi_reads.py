"""Reading the KPI rollups and the analytics tables: small grouped sums, never a scan of messages or events."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import sqlalchemy as sa

from growthengine.analytics.definitions import KpiConfig
from growthengine.storage.analytics_schema import (
    CHANNEL_COUNTERS,
    KPI_COUNTERS,
    REVENUE_SUMS,
    kpi_current,
    kpi_daily,
    kpi_flow_days,
    kpi_monthly,
    kpi_open_hours,
    kpi_reasons,
    kpi_reasons_monthly,
    segment_size_history,
)
from growthengine.storage.dialects import insert_for
from growthengine.storage.flow_schema import flow_runs, messages
from growthengine.storage.schema import engine_state

SUMMED = (*KPI_COUNTERS, *REVENUE_SUMS)


def _split_span(first: dt.date, last: dt.date) -> tuple[tuple[str, str] | None, list[tuple[dt.date, dt.date]]]:
    """The whole months inside ``first``..``last`` (as a 'YYYY-MM' range) and the day ranges left at its edges."""
    month_start = first if first.day == 1 else _next_month(first)
    after = _next_month(last)
    month_end = after if after - dt.timedelta(days=1) == last else dt.date(last.year, last.month, 1)
    if month_start >= month_end:
        return None, [(first, last)]
    edges = []
    if first < month_start:
        edges.append((first, month_start - dt.timedelta(days=1)))
    if month_end <= last:
        edges.append((month_end, last))
    final = month_end - dt.timedelta(days=1)
    return (month_start.isoformat()[:7], final.isoformat()[:7]), edges


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


CONFIG_KEY = "kpi_config"


class KpiReads:
    """Plain access to the KPI tables (what the rollups hold is computed in ``analytics/``)."""

    def __init__(self, conn: sa.Connection, dialect: str) -> None:
        self._conn = conn
        self._dialect = dialect
        self._config: KpiConfig | None = None

    # Settings -------------------------------------------------------------------------------------------

    def stored_config(self) -> KpiConfig | None:
        value = self._conn.execute(sa.select(engine_state.c.value).where(engine_state.c.key == CONFIG_KEY)).scalar()
        return KpiConfig.from_dict(orjson.loads(value)) if value is not None else None

    def config(self) -> KpiConfig:
        if self._config is None:
            self._config = self.stored_config() or KpiConfig()
        return self._config

    def save_config(self, config: KpiConfig) -> None:
        stmt = insert_for(self._dialect, engine_state)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"value": stmt.excluded.value})
        self._conn.execute(stmt, {"key": CONFIG_KEY, "value": orjson.dumps(config.as_dict()).decode()})
        self._config = config

    def breakdown(self, first: dt.date, last: dt.date, *, flow: str | None = None) -> list[dict[str, Any]]:
        """Counter totals over the local days ``first``..``last`` per flow, step, channel and variant.

        Whole calendar months inside the span are read from ``kpi_monthly``, the days at its edges from
        ``kpi_daily``: a year is 12 month rows and at most ~60 day rows per key.
        """
        months, edges = _split_span(first, last)
        dims = ("flow_key", "step", "channel", "variant")
        parts = []
        if months:
            part = sa.select(*[kpi_monthly.c[d] for d in dims], *[kpi_monthly.c[c] for c in SUMMED]).where(
                kpi_monthly.c.month >= months[0], kpi_monthly.c.month <= months[1])
            parts.append(part.where(kpi_monthly.c.flow_key == flow) if flow is not None else part)
        for lo, hi in edges:
            part = sa.select(*[kpi_daily.c[d] for d in dims], *[kpi_daily.c[c] for c in SUMMED]).where(
                kpi_daily.c.day >= lo.isoformat(), kpi_daily.c.day <= hi.isoformat())
            parts.append(part.where(kpi_daily.c.flow_key == flow) if flow is not None else part)
        if not parts:
            return []
        union = sa.union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        groups = [union.c[d] for d in dims]
        query = (sa.select(*groups, *[sa.func.sum(union.c[c]).label(c) for c in SUMMED])
                 .group_by(*groups).order_by(*groups))
        out = []
        for row in self._conn.execute(query).mappings():
            item: dict[str, Any] = {"flow": row["flow_key"], "step": row["step"], "channel": row["channel"],
                                    "variant": row["variant"]}
            item.update({c: int(row[c] or 0) for c in KPI_COUNTERS})
            item.update({c: float(row[c] or 0) for c in REVENUE_SUMS})
            if item["decided"]:
                out.append(item)
        return out

    def by_day(self, first: dt.date, last: dt.date, *, flow: str | None = None) -> list[dict[str, Any]]:
        """Counter totals per local day (with the push and email sends and opens for open rates)."""
        counters = (*KPI_COUNTERS, *CHANNEL_COUNTERS, *REVENUE_SUMS)
        query = (sa.select(kpi_flow_days.c.day, *[sa.func.sum(kpi_flow_days.c[c]).label(c) for c in counters])
                 .where(kpi_flow_days.c.day >= first.isoformat(), kpi_flow_days.c.day <= last.isoformat())
                 .group_by(kpi_flow_days.c.day).order_by(kpi_flow_days.c.day))
        if flow is not None:
            query = query.where(kpi_flow_days.c.flow_key == flow)
        out = []
        for row in self._conn.execute(query).mappings():
            item: dict[str, Any] = {"day": row["day"], **{c: int(row[c] or 0) for c in counters
                                                          if c not in REVENUE_SUMS},
                                    **{c: float(row[c] or 0) for c in REVENUE_SUMS}}
            if item["decided"]:
                out.append(item)
        return out

    def reasons(self, first: dt.date, last: dt.date, *, flow: str | None = None) -> list[dict[str, Any]]:
        """Messages held, moved, suppressed, failed or cancelled, by flow, step, channel, status and rule
        (whole months from ``kpi_reasons_monthly``, the edge days from ``kpi_reasons``)."""
        months, edges = _split_span(first, last)
        dims = ("flow_key", "step", "channel", "status", "reason")
        parts = []
        if months:
            t = kpi_reasons_monthly
            parts.append(sa.select(*[t.c[d] for d in dims], t.c.n).where(t.c.month >= months[0],
                                                                         t.c.month <= months[1]))
        for lo, hi in edges:
            parts.append(sa.select(*[kpi_reasons.c[d] for d in dims], kpi_reasons.c.n).where(
                kpi_reasons.c.day >= lo.isoformat(), kpi_reasons.c.day <= hi.isoformat()))
        if flow is not None:
            parts = [part.where(sa.column("flow_key") == flow) for part in parts]
        union = sa.union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        groups = [union.c[d] for d in dims]
        query = sa.select(*groups, sa.func.sum(union.c.n).label("n")).group_by(*groups).order_by(*groups)
        return [{"flow": r["flow_key"], "step": r["step"], "channel": r["channel"], "status": r["status"],
                 "reason": r["reason"], "n": int(r["n"])}
                for r in self._conn.execute(query).mappings() if r["n"]]

    def current(self, *, flow: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Messages as they stand now, by flow, step, channel, status and reason (whatever their day)."""
        t = kpi_current
        query = sa.select(t.c.flow_key, t.c.step, t.c.channel, t.c.status, t.c.reason, t.c.n).where(t.c.n != 0)
        if flow is not None:
            query = query.where(t.c.flow_key == flow)
        if status is not None:
            query = query.where(t.c.status == status)
        query = query.order_by(t.c.flow_key, t.c.step, t.c.channel, t.c.status, t.c.reason)
        return [{"flow": r[0], "step": r[1], "channel": r[2], "status": r[3], "reason": r[4], "n": int(r[5])}
                for r in self._conn.execute(query)]

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

    def latest_snapshot(self) -> tuple[int, dict[str, int]] | None:
        """When the newest snapshot was taken, and its sizes."""
        t = segment_size_history
        last = sa.select(sa.func.max(t.c.day)).scalar_subquery()
        rows = self._conn.execute(sa.select(t.c.segment_key, t.c.size, t.c.taken_us).where(t.c.day == last)).all()
        if not rows:
            return None
        return max(int(r[2]) for r in rows), {str(r[0]): int(r[1]) for r in rows}

    def segment_history(self, day_from: str, day_to: str) -> list[dict[str, Any]]:
        query = (sa.select(segment_size_history)
                 .where(segment_size_history.c.day >= day_from, segment_size_history.c.day <= day_to)
                 .order_by(segment_size_history.c.day, segment_size_history.c.segment_key))
        return [{"day": r["day"], "segment": r["segment_key"], "size": int(r["size"])}
                for r in self._conn.execute(query).mappings()]

    def active_runs(self, flow: str) -> dict[str, int]:
        """Live runs of a flow by the step they stand at (an index range: only live runs are read)."""
        query = (sa.select(flow_runs.c.cursor, sa.func.count())
                 .where(flow_runs.c.flow_key == flow, flow_runs.c.status == "active")
                 .group_by(flow_runs.c.cursor))
        return {str(cursor): int(n) for cursor, n in self._conn.execute(query)}

    def runs_at_steps(self, flow: str) -> dict[tuple[str, str], int]:
        """A flow's live and exited runs by (status, cursor): two index ranges, never its completed runs."""
        query = (sa.select(flow_runs.c.status, flow_runs.c.cursor, sa.func.count())
                 .where(flow_runs.c.flow_key == flow, flow_runs.c.status.in_(("active", "exited")))
                 .group_by(flow_runs.c.status, flow_runs.c.cursor))
        return {(str(status), str(cursor)): int(n) for status, cursor, n in self._conn.execute(query)}

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

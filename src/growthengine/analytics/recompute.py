"""The KPI rollups computed from scratch, straight from the definitions, over every message and event.

This is the reference the incremental rollups are checked against (the contract tests, ``growth bench
dashboard``): written plainly and separately from the delta bookkeeping of ``storage/kpi_store.py``, so that a
mistake in one is not repeated in the other. It scans everything: never call it on a request.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa

from growthengine.analytics.definitions import KpiConfig
from growthengine.clock import from_us
from growthengine.storage.analytics_schema import (
    CHANNEL_COUNTERS,
    KPI_COUNTERS,
    kpi_daily,
    kpi_flow_days,
    kpi_monthly,
    kpi_open_hours,
    kpi_reasons,
    kpi_reasons_monthly,
)
from growthengine.storage.flow_schema import messages
from growthengine.storage.schema import events

Key = tuple[Any, ...]
FLOW_DAY_COUNTERS = (*KPI_COUNTERS, *CHANNEL_COUNTERS)


@dataclass
class Rollups:
    daily: dict[Key, dict[str, int]] = field(default_factory=dict)
    monthly: dict[Key, dict[str, int]] = field(default_factory=dict)
    flow_days: dict[Key, dict[str, int]] = field(default_factory=dict)
    reasons: dict[Key, int] = field(default_factory=dict)
    reason_months: dict[Key, int] = field(default_factory=dict)
    opens: dict[Key, int] = field(default_factory=dict)


def recompute(conn: sa.Connection, config: KpiConfig) -> Rollups:
    """What ``kpi_daily``, ``kpi_reasons`` and ``kpi_open_hours`` must hold, from the ledger and the event log."""
    tz = ZoneInfo(config.timezone)
    window = config.attribution_days * 86_400_000_000
    purchases: dict[str, list[int]] = defaultdict(list)
    unsubscribes: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    query = sa.select(events.c.user_id, events.c.name, events.c.ts_us, events.c.payload).where(
        events.c.type == "track", events.c.name.in_(["purchase", "unsubscribed"]))
    for user, name, ts, payload in conn.execute(query):
        if name == "purchase":
            purchases[user].append(int(ts))
        else:
            unsubscribes[user].append((int(ts), (orjson.loads(payload) or {}).get("channel")))

    daily: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KPI_COUNTERS, 0))
    reasons: dict[Key, int] = defaultdict(int)
    opens: dict[Key, int] = defaultdict(int)
    for m in conn.execute(sa.select(messages)).mappings():
        status, reason, user, channel = m["status"], m["reason"] or "", m["user_id"], m["channel"]
        went_out = status in ("sent", "delivered", "opened", "clicked")
        when = m["sent_us"] if went_out and m["sent_us"] is not None else m["scheduled_us"]
        day = from_us(when).astimezone(tz).date().isoformat()
        counts = daily[(day, m["flow_key"], m["step"], channel, m["variant"] or "", m["kind"])]
        counts["decided"] += 1
        counts["sent"] += went_out
        counts["delivered"] += status in ("delivered", "opened", "clicked")
        counts["opened"] += status in ("opened", "clicked")
        for name in ("clicked", "failed", "suppressed", "scheduled", "cancelled"):
            counts[name] += status == name
        control = status == "suppressed" and reason == "holdout"
        anchor = when if went_out else m["scheduled_us"] if control else None
        if anchor is not None:
            converted = any(anchor <= ts < anchor + window for ts in purchases.get(user, ()))
            if went_out:
                counts["converted"] += converted
                counts["unsubscribed"] += any(
                    anchor <= ts < anchor + window and (target in (None, "", "all") or target == channel)
                    for ts, target in unsubscribes.get(user, ()))
            else:
                counts["control"] += 1
                counts["control_converted"] += converted
        if reason:
            reasons[(day, m["flow_key"], m["step"], channel, status, reason)] += 1
        if status in ("opened", "clicked"):
            data = orjson.loads(m["data"])
            at = next((v for v in (data.get("opened_us"), data.get("clicked_us"))
                       if isinstance(v, int) and not isinstance(v, bool) and v), m["updated_us"])
            local = from_us(at).astimezone(tz)
            opens[(m["flow_key"], channel, local.weekday() * 24 + local.hour)] += 1
    monthly: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KPI_COUNTERS, 0))
    flow_days: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FLOW_DAY_COUNTERS, 0))
    for (day, flow, step, channel, variant, kind), counts in daily.items():
        month, per_flow = monthly[(day[:7], flow, step, channel, variant, kind)], flow_days[(day, flow)]
        for name, n in counts.items():
            month[name] += n
            per_flow[name] += n
        if channel in ("push", "email"):
            per_flow[f"{channel}_sent"] += counts["sent"]
            per_flow[f"{channel}_opened"] += counts["opened"]
    reason_months: dict[Key, int] = defaultdict(int)
    for (day, *rest), n in reasons.items():
        reason_months[(day[:7], *rest)] += n
    return Rollups(dict(daily), dict(monthly), dict(flow_days), dict(reasons), dict(reason_months), dict(opens))


def stored(conn: sa.Connection) -> Rollups:
    """What the rollup tables hold now (rows whose counters are all zero left out)."""
    def table(source: sa.Table, dims: tuple[str, ...], counters: tuple[str, ...]) -> dict[Key, dict[str, int]]:
        found = {}
        for r in conn.execute(sa.select(source)).mappings():
            counts = {c: int(r[c]) for c in counters}
            if any(counts.values()):
                found[tuple(r[d] for d in dims)] = counts
        return found

    kinds = ("flow_key", "step", "channel", "variant", "kind")
    daily = table(kpi_daily, ("day", *kinds), KPI_COUNTERS)
    monthly = table(kpi_monthly, ("month", *kinds), KPI_COUNTERS)
    flow_days = table(kpi_flow_days, ("day", "flow_key"), FLOW_DAY_COUNTERS)
    reasons = {(r["day"], r["flow_key"], r["step"], r["channel"], r["status"], r["reason"]): int(r["n"])
               for r in conn.execute(sa.select(kpi_reasons)).mappings() if r["n"]}
    reason_months = {(r["month"], r["flow_key"], r["step"], r["channel"], r["status"], r["reason"]): int(r["n"])
                     for r in conn.execute(sa.select(kpi_reasons_monthly)).mappings() if r["n"]}
    opens = {(r["flow_key"], r["channel"], int(r["how"])): int(r["n"])
             for r in conn.execute(sa.select(kpi_open_hours)).mappings() if r["n"]}
    return Rollups(daily, monthly, flow_days, reasons, reason_months, opens)

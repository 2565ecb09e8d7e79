"""The KPI rollups computed from scratch, straight from the definitions, over every message and event.

This is the reference the rollups are checked against (the contract tests): written plainly in Python from the send
ledger (``messages``) and the event log, separately from the SQL of ``rollup_sql.py``, so that a mistake in one is not
repeated in the other. It scans everything: never call it on a request.
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
    REVENUE_SUMS,
    kpi_current,
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
Counts = dict[str, float]
DAILY_COUNTERS = (*KPI_COUNTERS, *REVENUE_SUMS)
FLOW_DAY_COUNTERS = (*KPI_COUNTERS, *CHANNEL_COUNTERS, *REVENUE_SUMS)


@dataclass
class Rollups:
    daily: dict[Key, Counts] = field(default_factory=dict)
    monthly: dict[Key, Counts] = field(default_factory=dict)
    flow_days: dict[Key, Counts] = field(default_factory=dict)
    reasons: dict[Key, int] = field(default_factory=dict)
    reason_months: dict[Key, int] = field(default_factory=dict)
    opens: dict[Key, int] = field(default_factory=dict)
    current: dict[Key, int] = field(default_factory=dict)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _settle(counts: Counts) -> Counts:
    """Sums as compared: counts are whole, revenue to the satang, squares to nine significant digits."""
    out: Counts = {}
    for name, value in counts.items():
        if name.endswith("_sq"):
            out[name] = float(f"{value:.9g}")
        elif name.endswith("revenue"):
            out[name] = round(value, 2) + 0.0
        else:
            out[name] = int(value)
    return out


def recompute(conn: sa.Connection, config: KpiConfig) -> Rollups:
    """What the rollup tables must hold, from the ledger and the event log."""
    tz = ZoneInfo(config.timezone)
    window = config.attribution_days * 86_400_000_000
    went = ("sent", "delivered", "opened", "clicked")
    # Each message: its day, group and anchor.
    facts: dict[str, dict[str, Any]] = {}
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in conn.execute(sa.select(messages)).mappings():
        status, reason = m["status"], m["reason"] or ""
        went_out = status in went
        when = m["sent_us"] if went_out and m["sent_us"] is not None else m["scheduled_us"]
        group = "t" if went_out else "c" if status == "suppressed" and reason == "holdout" else ""
        f = {"id": m["id"], "user": m["user_id"], "row": m, "status": status, "reason": reason, "group": group,
             "day": from_us(when).astimezone(tz).date().isoformat(), "anchor": when if went_out else m["scheduled_us"],
             "purchases": 0, "revenue": 0.0, "unsubscribed": False}
        facts[m["id"]] = f
        if group:
            by_user[m["user_id"]].append(f)
    # Each purchase and unsubscribe, credited to one message: the last touch whose window holds it.
    query = sa.select(events.c.user_id, events.c.name, events.c.ts_us, events.c.payload).where(
        events.c.type == "track", events.c.name.in_(["purchase", "unsubscribed"]))
    for user, name, ts, payload in conn.execute(query):
        props = orjson.loads(payload) or {}
        target = props.get("channel") if isinstance(props, dict) else None
        candidates = [
            f for f in by_user.get(user, ())
            if f["anchor"] <= ts < f["anchor"] + window and (
                f["group"] in ("t", "c") if name == "purchase"
                else f["group"] == "t" and (target in (None, "", "all") or target == f["row"]["channel"]))
        ]
        if not candidates:
            continue
        last = max(candidates, key=lambda f: (f["anchor"], f["id"]))
        if name == "purchase":
            last["purchases"] += 1
            last["revenue"] += _number(props.get("amount") if isinstance(props, dict) else None)
        else:
            last["unsubscribed"] = True

    daily: dict[Key, Counts] = defaultdict(lambda: dict.fromkeys(DAILY_COUNTERS, 0))
    flow_days: dict[Key, Counts] = defaultdict(lambda: dict.fromkeys(FLOW_DAY_COUNTERS, 0))
    reasons: dict[Key, int] = defaultdict(int)
    opens: dict[Key, int] = defaultdict(int)
    current: dict[Key, int] = defaultdict(int)
    for f in facts.values():
        m, status, reason, group = f["row"], f["status"], f["reason"], f["group"]
        channel, day = m["channel"], f["day"]
        counts = dict.fromkeys(FLOW_DAY_COUNTERS, 0.0)
        counts["decided"] = 1
        counts["sent"] = group == "t"
        counts["delivered"] = status in ("delivered", "opened", "clicked")
        counts["opened"] = status in ("opened", "clicked")
        for name in ("scheduled", "clicked", "failed", "suppressed", "cancelled"):
            counts[name] = status == name
        converted = f["purchases"] > 0
        if group == "t":
            counts["converted"] = converted
            counts["unsubscribed"] = f["unsubscribed"]
            counts["purchases"] = f["purchases"]
            counts["revenue"], counts["revenue_sq"] = f["revenue"], f["revenue"] ** 2
        elif group == "c":
            counts["control"] = 1
            counts["control_converted"] = converted
            counts["control_revenue"], counts["control_revenue_sq"] = f["revenue"], f["revenue"] ** 2
        if channel in ("push", "email"):
            counts[f"{channel}_sent"] = counts["sent"]
            counts[f"{channel}_opened"] = counts["opened"]
        into = daily[(day, m["flow_key"], m["step"], channel, m["variant"] or "", m["kind"])]
        for name in DAILY_COUNTERS:
            into[name] += counts[name]
        per_flow = flow_days[(day, m["flow_key"])]
        for name in FLOW_DAY_COUNTERS:
            per_flow[name] += counts[name]
        if reason:
            reasons[(day, m["flow_key"], m["step"], channel, status, reason)] += 1
        current[(m["flow_key"], m["step"], channel, status, reason)] += 1
        if status in ("opened", "clicked"):
            data = orjson.loads(m["data"])
            at = next((v for v in (data.get("opened_us"), data.get("clicked_us"))
                       if isinstance(v, int) and not isinstance(v, bool) and v), m["updated_us"])
            local = from_us(at).astimezone(tz)
            opens[(m["flow_key"], channel, local.weekday() * 24 + local.hour)] += 1
    monthly: dict[Key, Counts] = defaultdict(lambda: dict.fromkeys(DAILY_COUNTERS, 0))
    for (day, *rest), counts in daily.items():
        month = monthly[(day[:7], *rest)]
        for name, n in counts.items():
            month[name] += n
    reason_months: dict[Key, int] = defaultdict(int)
    for (day, *rest), n in reasons.items():
        reason_months[(day[:7], *rest)] += n
    return Rollups({k: _settle(v) for k, v in daily.items()}, {k: _settle(v) for k, v in monthly.items()},
                   {k: _settle(v) for k, v in flow_days.items()}, dict(reasons), dict(reason_months), dict(opens),
                   dict(current))


def stored(conn: sa.Connection) -> Rollups:
    """What the rollup tables hold now (rows whose counters are all zero left out)."""
    def table(source: sa.Table, dims: tuple[str, ...], counters: tuple[str, ...]) -> dict[Key, Counts]:
        found = {}
        for r in conn.execute(sa.select(source)).mappings():
            counts = _settle({c: float(r[c]) for c in counters})
            if any(counts.values()):
                found[tuple(r[d] for d in dims)] = counts
        return found

    def counted(source: sa.Table, dims: tuple[str, ...]) -> dict[Key, int]:
        return {tuple(int(r[d]) if d == "how" else r[d] for d in dims): int(r["n"])
                for r in conn.execute(sa.select(source)).mappings() if r["n"]}

    kinds = ("flow_key", "step", "channel", "variant", "kind")
    reason_dims = ("flow_key", "step", "channel", "status", "reason")
    return Rollups(
        table(kpi_daily, ("day", *kinds), DAILY_COUNTERS),
        table(kpi_monthly, ("month", *kinds), DAILY_COUNTERS),
        table(kpi_flow_days, ("day", "flow_key"), FLOW_DAY_COUNTERS),
        counted(kpi_reasons, ("day", *reason_dims)),
        counted(kpi_reasons_monthly, ("month", *reason_dims)),
        counted(kpi_open_hours, ("flow_key", "channel", "how")),
        counted(kpi_current, reason_dims),
    )

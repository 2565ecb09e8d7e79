"""The KPI report: rates from the rollups, uplift against the control group, and the spec's benchmarks."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from growthengine.analytics.definitions import RATES, definitions
from growthengine.analytics.stats import mean_difference_from_sums, newcombe_difference
from growthengine.storage.analytics_schema import CHANNEL_COUNTERS, KPI_COUNTERS, REVENUE_SUMS
from growthengine.storage.unit_of_work import Tx
from growthengine.timefmt import DATE_PATTERN, TimeFormatError, parse_instant

_DATE = re.compile(DATE_PATTERN)
DEFAULT_DAYS = 30
MAX_DAYS = 3660


@dataclass(frozen=True)
class Benchmark:
    metric: str
    op: str  # ">" or "<"
    target: float

    def check(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value > self.target if self.op == ">" else value < self.target


BENCHMARKS = (
    Benchmark("delivery_rate", ">", 0.98),
    Benchmark("push_open_rate", ">", 0.05),
    Benchmark("email_open_rate", ">", 0.20),
    Benchmark("ctr", ">", 0.02),
    Benchmark("conversion_rate", ">", 0.015),
    Benchmark("uplift", ">", 0.0),
    Benchmark("unsubscribe_rate", "<", 0.005),
)


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def uplift(counts: dict[str, Any]) -> dict[str, Any] | None:
    """Conversion of the treated group minus the control group's, with its 95 % interval."""
    treated, control = int(counts["sent"]), int(counts["control"])
    if not treated or not control:
        return None
    value, low, high = newcombe_difference(int(counts["converted"]), treated, int(counts["control_converted"]),
                                           control)
    return {"value": value, "low": low, "high": high, "treated": treated, "control": control,
            "significant": low > 0 or high < 0}


def revenue_uplift(sums: dict[str, Any]) -> dict[str, Any] | None:
    """Revenue per message sent minus revenue per control message, with its 95 % Welch interval."""
    treated, control = int(sums.get("sent", 0)), int(sums.get("control", 0))
    if treated < 2 or control < 2:
        return None
    value, low, high = mean_difference_from_sums(
        float(sums.get("revenue", 0)), float(sums.get("revenue_sq", 0)), treated,
        float(sums.get("control_revenue", 0)), float(sums.get("control_revenue_sq", 0)), control)
    return {"value": value, "low": low, "high": high, "treated": treated, "control": control,
            "significant": low > 0 or high < 0}


def kpi_row(sums: dict[str, Any], dimensions: dict[str, Any] | None = None) -> dict[str, Any]:
    """One report row: its dimensions, its counts and revenue, its rates (each as ``definitions.RATES`` defines
    it; None where nothing to divide by) and its uplifts."""
    row: dict[str, Any] = dict(dimensions or {})
    row.update({c: int(sums.get(c, 0)) for c in (*KPI_COUNTERS, *CHANNEL_COUNTERS)})
    row.update({"revenue": round(float(sums.get("revenue", 0)), 2),
                "control_revenue": round(float(sums.get("control_revenue", 0)), 2)})
    row.update({rate.name: rate.of(sums) for rate in RATES})
    row["uplift"] = uplift(row)
    row["revenue_uplift"] = revenue_uplift(sums)
    return row


def metric_value(row: dict[str, Any], metric: str) -> float | None:
    value = row.get(metric)
    if isinstance(value, dict):
        inner = value.get("value")
        return float(inner) if isinstance(inner, (int, float)) else None
    return float(value) if isinstance(value, (int, float)) else None


def benchmarks(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each KPI of the row against the spec's good benchmark."""
    out = {}
    for b in BENCHMARKS:
        value = metric_value(row, b.metric)
        out[b.metric] = {"value": value, "target": b.target, "op": b.op, "ok": b.check(value)}
    return out


def _by_reason(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["reason"] or "due_later"] = out.get(r["reason"] or "due_later", 0) + r["n"]
    return dict(sorted(out.items()))


class ReportSpanError(TimeFormatError):
    """Days that are each fine but make no report together (from after to, too many days)."""


def parse_day(value: str, zone: ZoneInfo, *, field: str) -> dt.date:
    """An ISO date (a local calendar day) or an ISO instant (the local day it falls on)."""
    text = value.strip()
    if _DATE.match(text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise TimeFormatError(f"{field} is not a date: {value[:40]!r}") from None
    return parse_instant(text, field=field, require_offset=True).astimezone(zone).date()


def day_span(today: dt.date, zone: ZoneInfo, start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    """The report's days: ``from`` to ``to`` inclusive; by default the 30 days up to today."""
    last = parse_day(end, zone, field="to") if end else today
    first = parse_day(start, zone, field="from") if start else last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ReportSpanError("from must not be after to")
    if (last - first).days >= MAX_DAYS:
        raise ReportSpanError(f"a report spans at most {MAX_DAYS} days")
    return first, last


def aggregate(rows: list[dict[str, Any]], by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Sum breakdown rows (per flow, step, channel, variant) over the dimensions not in ``by``."""
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in by)
        into = totals.get(key)
        if into is None:
            into = totals[key] = {**dict(zip(by, key, strict=True)), **dict.fromkeys(KPI_COUNTERS, 0),
                                  **dict.fromkeys(CHANNEL_COUNTERS, 0), **dict.fromkeys(REVENUE_SUMS, 0.0)}
        for c in (*KPI_COUNTERS, *REVENUE_SUMS):
            into[c] += row[c]
        if row["channel"] in ("push", "email"):
            into[f"{row['channel']}_sent"] += row["sent"]
            into[f"{row['channel']}_opened"] += row["opened"]
    return [totals[key] for key in sorted(totals)]


def build_report(tx: Tx, first: dt.date, last: dt.date, flow: str | None = None) -> dict[str, Any]:
    """``GET /v1/kpis``: overall, and by flow, step, channel, variant and day."""
    config = tx.kpis.config()
    breakdown = tx.kpis.breakdown(first, last, flow=flow)

    def rows(*by: str) -> list[dict[str, Any]]:
        return [kpi_row(r, {name: r[name] for name in by}) for r in aggregate(breakdown, by)]

    overall = kpi_row((aggregate(breakdown, ()) or [{}])[0])
    overall["benchmarks"] = benchmarks(overall)
    waiting = tx.kpis.current(flow=flow, status="scheduled")
    return {
        "from": first.isoformat(), "to": last.isoformat(), "flow": flow, "timezone": config.timezone,
        "attribution_days": config.attribution_days,
        "attribution": "last_touch",
        "definitions": {"th": definitions("th"), "en": definitions("en")},
        "now": {"scheduled": sum(r["n"] for r in waiting),
                "scheduled_by_reason": _by_reason(waiting)},
        "overall": overall,
        "by_flow": rows("flow"),
        "by_step": rows("flow", "step"),
        "by_channel": rows("channel"),
        "by_variant": rows("flow", "step", "variant"),
        "by_day": [kpi_row(r, {"day": r["day"]}) for r in tx.kpis.by_day(first, last, flow=flow)],
    }

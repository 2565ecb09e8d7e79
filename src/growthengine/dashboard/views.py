"""What each dashboard page shows, read from the rollups and small indexed queries (never a scan per request)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson

from growthengine.analytics.definitions import day_range, zone
from growthengine.analytics.report import aggregate, build_report, day_span, kpi_row
from growthengine.analytics.stats import wilson
from growthengine.clock import from_us, to_us
from growthengine.dashboard.flow_diagram import diagram
from growthengine.dashboard.i18n import translator
from growthengine.engine import Engine
from growthengine.flows.model import Branch, CouponAction, RecommendationAction, Send, Step, Wait, iter_steps
from growthengine.flows.paths import resolve

HISTORY_DAYS = 90
Translate = Callable[..., str]
THAI = translator("th")  # the dashboard's default language


def overview(engine: Engine, *, flow: str | None, start: str | None, end: str | None,
             t: Translate = THAI) -> dict[str, Any]:
    with engine.store.read() as tx:
        tz = zone(tx.kpis.config())
        first, last = day_span(engine.clock.now().astimezone(tz).date(), tz, start, end)
        report = build_report(tx, first, last, flow)
        report["reasons"] = tx.kpis.reasons(first, last, flow=flow)
    report["flows"] = sorted(engine.config.flows)
    report["chart"] = _daily_chart(report["by_day"], first, last, t)
    report["pipeline"] = engine.pipeline_status()
    return report


def _daily_chart(rows: list[dict[str, Any]], first: dt.date, last: dt.date, t: Translate) -> dict[str, Any]:
    """Every day of the span (zero where nothing happened), so that one busy day still reads as a day."""
    known = {r["day"]: r for r in rows}
    x = day_range(first, last)
    days = [known.get(day, {"sent": 0, "opened": 0, "clicked": 0, "converted": 0}) for day in x]
    series = [("sent", "#2563eb"), ("opened", "#16a34a"), ("clicked", "#f59e0b"), ("converted", "#db2777")]
    return {"data": [{"type": "scatter", "mode": "lines+markers", "name": t(name), "x": x,
                      "y": [d[name] for d in days], "line": {"color": color}} for name, color in series],
            "layout": {"height": 280, "xaxis": {"type": "date", "tickformat": "%d %b"}}}


def segments(engine: Engine) -> dict[str, Any]:
    """Sizes now (counted from the memberships on every visit, as ``GET /v1/segments`` does) and over time (the
    daily snapshots)."""
    now = engine.clock.now()
    sizes = engine.segment_sizes()
    with engine.store.read() as tx:
        tz = zone(tx.kpis.config())
    today = now.astimezone(tz).date()
    with engine.store.read() as tx:
        history = tx.kpis.segment_history((today - dt.timedelta(days=HISTORY_DAYS - 1)).isoformat(),
                                          today.isoformat())
    by_segment: dict[str, dict[str, int]] = defaultdict(dict)
    for row in history:
        by_segment[row["segment"]][row["day"]] = row["size"]
    rows, traces = [], []
    for key, seg in engine.segments.segments.items():
        points = dict(by_segment.get(key, {}))
        points[today.isoformat()] = sizes.get(key, 0)  # today's point is the live size
        days = sorted(points)
        traces.append({"type": "scatter", "mode": "lines+markers", "name": seg.name, "x": days,
                       "y": [points[d] for d in days]})
        rows.append({"key": key, "name": seg.name, "refresh": seg.refresh, "size": sizes.get(key, 0),
                     "description": seg.description})
    shown = sorted({str(row["day"]) for row in history} | {today.isoformat()})
    span = [(dt.date.fromisoformat(shown[0]) - dt.timedelta(days=1)).isoformat(),
            (today + dt.timedelta(days=1)).isoformat()]
    layout = {"height": 320, "xaxis": {"type": "date", "tickformat": "%d %b", "range": span}}
    return {"segments": rows, "chart": {"data": traces, "layout": layout},
            "taken_at": local_time(to_us(now), tz), "timezone": tz.key}


def local_time(at_us: int, tz: ZoneInfo) -> str:
    """An instant as the business timezone reads it, with its offset (pages never show raw UTC)."""
    return from_us(at_us).astimezone(tz).strftime("%Y-%m-%d %H:%M (UTC%z)")


def _step_kind(step: Step, t: Translate) -> str:
    body = step.body
    if isinstance(body, Send):
        return f"{t('step_send')} · {body.channel}"
    if isinstance(body, Wait):
        return t("step_wait")
    if isinstance(body, (CouponAction, RecommendationAction)):
        return t("step_action")
    return t("step_branch") if isinstance(body, Branch) else t("step")


def flows(engine: Engine, *, start: str | None, end: str | None, t: Translate = THAI) -> dict[str, Any]:
    with engine.store.read() as tx:
        tz = zone(tx.kpis.config())
        first, last = day_span(engine.clock.now().astimezone(tz).date(), tz, start, end)
        sums = aggregate(tx.kpis.breakdown(first, last), ("flow", "step"))
        runs = {key: tx.kpis.active_runs(key) for key in engine.config.flows}
    by_step = {(r["flow"], r["step"]): kpi_row(r) for r in sums}
    out = []
    for key, flow in engine.config.flows.items():
        waiting: dict[str, int] = defaultdict(int)
        for cursor, n in runs.get(key, {}).items():
            step = resolve(flow.steps, cursor)
            waiting[step.name if step is not None else "?"] += n
        steps: list[dict[str, Any]] = []
        for step in iter_steps(flow.steps):
            row = by_step.get((key, step.name))
            steps.append({"name": step.name, "kind": _step_kind(step, t), "waiting": waiting.get(step.name, 0),
                          "kpi": row})
        sends = [s for s in steps if s["kpi"] is not None]
        chart = {"data": [{"type": "bar", "name": t(name), "x": [s["name"] for s in sends],
                           "y": [s["kpi"][name] for s in sends]}
                          for name in ("decided", "sent", "opened", "clicked", "converted")],
                 "layout": {"height": 260, "barmode": "group"}} if sends else None
        out.append({"key": key, "name": flow.name, "description": flow.description, "enabled": flow.enabled,
                    "holdout": flow.holdout_pct, "active": sum(waiting.values()),
                    "steps": steps, "chart": chart, "diagram": diagram(engine, key, flow)})
    return {"flows": out, "from": first.isoformat(), "to": last.isoformat()}


def messages(engine: Engine, *, user_id: str | None, flow: str | None, channel: str | None, status: str | None,
             before: int | None, limit: int = 50) -> dict[str, Any]:
    with engine.store.read() as tx:
        tz = zone(tx.kpis.config())
        rows = tx.kpis.explore(user_id=user_id, flow=flow, channel=channel, status=status, before_seq=before,
                               limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    items = []
    for r in rows:
        data = orjson.loads(r["data"]) if isinstance(r["data"], str) else (r["data"] or {})
        why = [str(v) for v in (data.get("gate"), data.get("error")) if v]
        items.append({
            "seq": r["seq"], "id": r["id"], "user": r["user_id"], "flow": r["flow_key"], "step": r["step"],
            "channel": r["channel"], "kind": r["kind"], "status": r["status"], "reason": r["reason"] or "",
            "why": "; ".join(why), "variant": r["variant"] or "",
            "scheduled_at": local_time(r["scheduled_us"], tz),
            "sent_at": local_time(r["sent_us"], tz) if r["sent_us"] is not None else "",
            "content": _short(r["subject"] or r["title"] or r["body"] or ""),
        })
    filters = {"user": user_id or "", "flow": flow or "", "channel": channel or "", "status": status or ""}
    following = rows[-1]["seq"] if more and rows else None
    older = urlencode({**{k: v for k, v in filters.items() if v}, "before": following}) if following else ""
    return {"messages": items, "next": following, "older_query": older, "filters": filters,
            "csv_query": urlencode({k: v for k, v in filters.items() if v}),
            "flows": sorted(engine.config.flows), "timezone": tz.key}


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def experiments(engine: Engine, *, start: str | None, end: str | None) -> dict[str, Any]:
    with engine.store.transaction() as tx:
        tz = zone(tx.kpis.config())
        first, last = day_span(engine.clock.now().astimezone(tz).date(), tz, start, end)
        rows = aggregate(tx.kpis.breakdown(first, last), ("flow", "step", "variant"))
    steps: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        steps[(r["flow"], r["step"])].append(r)
    out = []
    for (flow_key, step), variants in sorted(steps.items()):
        named = [v for v in variants if v["variant"]]
        if not named:
            continue
        shown = []
        for v in variants:
            row = kpi_row(v, {"variant": v["variant"] or "—"})
            row["conversion_ci"] = wilson(v["converted"], v["sent"]) if v["sent"] else None
            row["ctr_ci"] = wilson(v["clicked"], v["sent"]) if v["sent"] else None
            shown.append(row)
        out.append({"flow": flow_key, "step": step, "variants": shown,
                    "verdict": verdict_for(engine, flow_key, step)})
    return {"experiments": out, "from": first.isoformat(), "to": last.isoformat()}


def verdict_for(engine: Engine, flow: str, step: str) -> dict[str, Any] | None:
    """The experiment engine's state and decision for this send step (None when the step runs no experiment)."""
    from growthengine.engagement.experiments import PREFIX, experiment_key
    from growthengine.optimize.experiments import Experiment, decide

    with engine.store.transaction() as tx:
        doc = tx.state.get(PREFIX + experiment_key(flow, step))
    if not isinstance(doc, dict):
        return None
    state = Experiment.from_json(doc)
    verdict = state.verdict or decide(state)
    detail = verdict.reason
    if verdict.p_value is not None:
        detail += f" (always-valid p = {verdict.p_value:.3g})"
    return {"status": verdict.status, "winner": verdict.winner, "detail": detail}


def send_times(engine: Engine, *, flow: str | None, channel: str | None) -> dict[str, Any]:
    with engine.store.transaction() as tx:
        hours = tx.kpis.open_hours(flow=flow, channel=channel)
        tz_name = tx.kpis.config().timezone
    grid = [[hours.get(day * 24 + hour, 0) for hour in range(24)] for day in range(7)]
    return {"grid": grid, "total": sum(hours.values()), "timezone": tz_name, "flows": sorted(engine.config.flows)}

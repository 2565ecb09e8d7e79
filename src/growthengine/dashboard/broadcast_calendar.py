"""Broadcasts on the dashboard: a month's calendar (business time zone) of the scheduled and sent ones, each with
its counts as ``GET /v1/broadcasts/{id}`` gives them, and the choices the creation form offers."""

from __future__ import annotations

import calendar
import datetime as dt
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

from growthengine.clock import from_us, to_us
from growthengine.content.formatting import format_datetime
from growthengine.engine import Engine
from growthengine.flows.broadcasts import BEST_TIME, BROADCAST_FLOW
from growthengine.storage.broadcast_store import Broadcast, BroadcastStore

SENT = ("sent", "delivered", "opened", "clicked")
CHANNELS = ("push", "email", "sms", "in_app")


def month_of(value: str | None, today: dt.date) -> dt.date:
    """The first day of ``YYYY-MM`` (this month when absent or not a month)."""
    if value and len(value) == 7 and value[4] == "-" and value[:4].isdigit() and value[5:].isdigit():
        year, month = int(value[:4]), int(value[5:])
        if 2000 <= year <= 2200 and 1 <= month <= 12:
            return dt.date(year, month, 1)
    return today.replace(day=1)


def _shift(month: dt.date, by: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + by
    return dt.date(index // 12, index % 12 + 1, 1)


def _counts(engine: Engine) -> dict[str, Counter[str]]:
    """Each broadcast's messages by status as they stand now (the ``kpi_current`` rollup: no ledger scan)."""
    with engine.store.read() as tx:
        rows = tx.kpis.current(flow=BROADCAST_FLOW)
    out: dict[str, Counter[str]] = {}
    for row in rows:
        out.setdefault(row["step"], Counter())[row["status"]] += row["n"]
    return out


def item(broadcast: Broadcast, counts: Counter[str], tz: ZoneInfo, lang: str, now_us: int) -> dict[str, Any]:
    when_us = broadcast.at_us if broadcast.at_us is not None else broadcast.created_us
    sent = sum(counts[s] for s in SENT)
    return {"id": broadcast.id, "name": broadcast.name, "segment": broadcast.segment,
            "template": broadcast.template, "channel": broadcast.channel,
            "best_time": broadcast.at == BEST_TIME, "when": format_datetime(from_us(when_us), lang, tz.key),
            "time": from_us(when_us).astimezone(tz).strftime("%H:%M"), "members": broadcast.members,
            "messages": sum(counts.values()), "sent": sent, "held": counts["scheduled"],
            "suppressed": counts["suppressed"], "failed": counts["failed"],
            "state": "scheduled" if counts["scheduled"] or when_us > now_us else "sent",
            "by_status": dict(counts), "created_by": broadcast.created_by,
            "created": format_datetime(from_us(broadcast.created_us), lang, tz.key)}


def page(engine: Engine, *, month: str | None, lang: str) -> dict[str, Any]:
    tz = ZoneInfo(engine.settings.business_timezone)
    now = engine.clock.now()
    now_us = to_us(now)
    first = month_of(month, now.astimezone(tz).date())
    following = _shift(first, 1)
    start = dt.datetime.combine(first, dt.time(), tz)
    end = dt.datetime.combine(following, dt.time(), tz)
    with engine.store.read() as tx:
        found = BroadcastStore(tx.conn).between(to_us(start), to_us(end))
    counts = _counts(engine)
    by_day: dict[int, list[dict[str, Any]]] = {}
    for broadcast in found:
        shown = item(broadcast, counts.get(broadcast.id, Counter()), tz, lang, now_us)
        when_us = broadcast.at_us if broadcast.at_us is not None else broadcast.created_us
        by_day.setdefault(from_us(when_us).astimezone(tz).day, []).append(shown)
    weeks = [[{"day": day, "items": by_day.get(day, [])} if day else None for day in week]
             for week in calendar.Calendar(firstweekday=0).monthdayscalendar(first.year, first.month)]
    today = now.astimezone(tz).date()
    return {"month": first.strftime("%Y-%m"), "previous": _shift(first, -1).strftime("%Y-%m"),
            "next": following.strftime("%Y-%m"), "weeks": weeks, "broadcasts": [b for d in sorted(by_day)
                                                                                 for b in by_day[d]],
            "today": today.day if (today.year, today.month) == (first.year, first.month) else None,
            "month_name": (first.year + 543, first.month) if lang == "th" else (first.year, first.month),
            "segments": sorted(engine.segments.segments), "templates": _templates(engine),
            "channels": CHANNELS, "timezone": tz.key,
            "default_at": (now.astimezone(tz) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:00")}


def _templates(engine: Engine) -> list[dict[str, str]]:
    registry = engine.flows.runner.templates
    return [{"key": key, "channel": str(registry.get(key).channel)} for key in registry.keys()
            if str(registry.get(key).channel) in CHANNELS]

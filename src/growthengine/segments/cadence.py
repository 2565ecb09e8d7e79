"""Refresh cadence: real-time at once, hourly at the top of each hour, daily at 02:00 in the user's local time."""

from __future__ import annotations

import datetime as dt

from growthengine.clock import from_us, to_us
from growthengine.segments.feeds import zone_for
from growthengine.segments.model import Refresh

DAILY_HOUR = 2


_SPANS_KEPT = 1024
_spans: dict[tuple[str, str], tuple[int, int]] = {}
"""Per cadence and zone, the last span ``[at, instant]`` worked out: every time in it has that same first refresh
instant (there is none between), so most look-ups (the instants of one batch) are a comparison, not a conversion."""


def refresh_at_or_after(refresh: Refresh, at_us: int, tz: str) -> int:
    """The first refresh instant of this cadence at or after ``at_us``."""
    if refresh == "realtime":
        return at_us
    key = (refresh, tz)
    span = _spans.get(key)
    if span is not None and span[0] <= at_us <= span[1]:
        return span[1]
    instant = _first_refresh(refresh, at_us, tz)
    if span is not None and span[1] == instant:
        at_us = min(at_us, span[0])
    elif len(_spans) >= _SPANS_KEPT:
        _spans.clear()
    _spans[key] = (at_us, instant)
    return instant


def _first_refresh(refresh: Refresh, at_us: int, tz: str) -> int:
    local = from_us(at_us).astimezone(zone_for(tz))
    if refresh == "hourly":
        top = local.replace(minute=0, second=0, microsecond=0)
        if top < local:
            top = top + dt.timedelta(hours=1)
        return to_us(top)
    candidate = local.replace(hour=DAILY_HOUR, minute=0, second=0, microsecond=0)
    if candidate < local:
        next_day = (local + dt.timedelta(days=1)).date()
        candidate = dt.datetime.combine(next_day, dt.time(DAILY_HOUR), tzinfo=local.tzinfo)
    return to_us(candidate)

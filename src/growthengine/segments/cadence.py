"""Refresh cadence: real-time at once, hourly at the top of each hour, daily at 02:00 in the user's local time."""

from __future__ import annotations

import datetime as dt

from growthengine.clock import from_us, to_us
from growthengine.segments.feeds import zone_for
from growthengine.segments.model import Refresh

DAILY_HOUR = 2


def refresh_at_or_after(refresh: Refresh, at_us: int, tz: str) -> int:
    """The first refresh instant of this cadence at or after ``at_us``."""
    if refresh == "realtime":
        return at_us
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

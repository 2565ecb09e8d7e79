"""Send-time models updated as their stored documents, without building a :class:`SendTimeModel` for each.

The engagement stage adds a few signals to thousands of users' models a batch; decoding each document into a
168-hour array and encoding it again cost more than the arithmetic. :func:`update_document` does the same
arithmetic as :meth:`SendTimeModel.update` followed by :meth:`SendTimeModel.to_json` on the document's non-empty
hours only (the same float operations in the same order, so the stored document is the same to the last digit;
``tests/unit/test_send_time_docs.py`` holds it to that).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import zoneinfo
from collections.abc import Iterable
from typing import Any

from growthengine.optimize.send_time import DEFAULT_TZ, SendTimeConfig, resolve_zone
from growthengine.optimize.send_time_population import HOURS_PER_WEEK

_DEFAULT_CONFIG = SendTimeConfig()


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> tuple[zoneinfo.ZoneInfo, str]:
    return resolve_zone(name)


def update_document(doc: dict[str, Any] | None, points: Iterable[tuple[dt.datetime, float]], *, now: dt.datetime,
                    tz: str = DEFAULT_TZ, config: SendTimeConfig | None = None) -> dict[str, Any]:
    """The stored model ``doc`` (``None``: a new model in zone ``tz``) with ``points`` added as of ``now``: what
    ``SendTimeModel.from_json(doc).update(points, now=now)`` then ``.to_json()`` gives."""
    cfg = config or _DEFAULT_CONFIG
    if now.tzinfo is None:
        raise ValueError("instants must carry a UTC offset")
    now = now.astimezone(dt.UTC)
    counts: dict[int, float] = {}
    if doc is None:
        zone, zone_name = _zone(tz)
        as_of: dt.datetime | None = None
        events = 0
    else:
        zone, zone_name = _zone(str(doc.get("tz") or DEFAULT_TZ))
        for key, value in (doc.get("w") or {}).items():
            index = int(key)
            if not 0 <= index < HOURS_PER_WEEK:
                raise ValueError(f"hour of week {index} out of range")
            counts[index] = float(value)
        as_of = dt.datetime.fromisoformat(doc["as_of"]).astimezone(dt.UTC) if doc.get("as_of") else None
        events = int(doc.get("events", 0))
    half_life_s = cfg.half_life.total_seconds()
    target = now if as_of is None or now > as_of else as_of
    if as_of is not None and target > as_of:
        factor = 0.5 ** ((target - as_of).total_seconds() / half_life_s)
        counts = {i: v * factor for i, v in counts.items()}
    for instant, weight in points:
        if weight <= 0 or not math.isfinite(weight):
            continue
        if instant.tzinfo is None:
            raise ValueError("instants must carry a UTC offset")
        instant = instant.astimezone(dt.UTC)
        age_s = max(0.0, (target - instant).total_seconds())
        local = instant.astimezone(zone)
        index = local.weekday() * 24 + local.hour
        counts[index] = counts.get(index, 0.0) + weight * 0.5 ** (age_s / half_life_s)
        events += 1
    weights: dict[str, float] = {}
    for index in sorted(counts):
        value = counts[index]
        if value > 0:
            rounded = round(value, 4)
            if rounded > 0:
                weights[str(index)] = rounded
    return {"v": 1, "tz": zone_name, "events": events, "as_of": target.isoformat(), "w": weights}

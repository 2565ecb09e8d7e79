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
_HOUR_KEYS = tuple(str(index) for index in range(HOURS_PER_WEEK))
_HOUR_OF = {key: index for index, key in enumerate(_HOUR_KEYS)}


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> tuple[zoneinfo.ZoneInfo, str]:
    return resolve_zone(name)


def round4(value: float) -> float:
    """``round(value, 4)``, the same float, about four times faster for the weights a model holds.

    Python rounds a float to decimals through its exact decimal expansion (correct, and slow). A weight times 10^4
    is exact to well under 10^-6 in this range, so unless it lies within 10^-6 of a tie between two neighbours its
    nearest integer ``n`` is the one the exact rounding picks, and ``n / 10000`` (a correctly rounded division) is
    the float nearest that decimal: what ``round`` returns. Ties, near-ties and values out of range go to ``round``.
    """
    scaled = value * 10_000.0
    if 0.0 < scaled < 1e9:
        whole = int(scaled)
        part = scaled - whole
        if abs(part - 0.5) > 1e-6:
            return (whole + (part > 0.5)) / 10_000.0
    return round(value, 4)


def update_document(doc: dict[str, Any] | None, points: Iterable[tuple[dt.datetime, float]], *, now: dt.datetime,
                    tz: str = DEFAULT_TZ, config: SendTimeConfig | None = None) -> dict[str, Any]:
    """The stored model ``doc`` (``None``: a new model in zone ``tz``) with ``points`` added as of ``now``: what
    ``SendTimeModel.from_json(doc).update(points, now=now)`` then ``.to_json()`` gives."""
    cfg = config or _DEFAULT_CONFIG
    if now.tzinfo is None:
        raise ValueError("instants must carry a UTC offset")
    now = now.astimezone(dt.UTC)
    half_life_s = cfg.half_life.total_seconds()
    counts: dict[int, float] = {}
    if doc is None:
        zone, zone_name = _zone(tz)
        as_of: dt.datetime | None = None
        events = 0
    else:
        zone, zone_name = _zone(str(doc.get("tz") or DEFAULT_TZ))
        as_of = dt.datetime.fromisoformat(doc["as_of"]).astimezone(dt.UTC) if doc.get("as_of") else None
        events = int(doc.get("events", 0))
        # Decoded and decayed in one pass (each weight times the same factor as in two; times 1.0 it is unchanged);
        # hours as written by ``update_document`` are looked up, any other spelling goes through ``int``, checked.
        factor = 0.5 ** ((now - as_of).total_seconds() / half_life_s) if as_of is not None and now > as_of else 1.0
        stored = doc.get("w") or {}
        try:
            counts = {_HOUR_OF[key]: float(value) * factor for key, value in stored.items()}
        except (KeyError, TypeError):
            counts = {int(key): float(value) * factor for key, value in stored.items()}
            if counts and (min(counts) < 0 or max(counts) >= HOURS_PER_WEEK):
                index = next(i for i in counts if not 0 <= i < HOURS_PER_WEEK)
                raise ValueError(f"hour of week {index} out of range") from None
    target = now if as_of is None or now > as_of else as_of
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
    # The hours whose weight rounds to more than zero, in hour order (a weight at or under zero rounds to none).
    weights = {_HOUR_KEYS[index]: rounded for index in sorted(counts) if (rounded := round4(counts[index])) > 0}
    return {"v": 1, "tz": zone_name, "events": events, "as_of": target.isoformat(), "w": weights}

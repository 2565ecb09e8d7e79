"""Windows and delays as a marketer writes them: ``30m``, ``1h``, ``7d``, ``2w``."""

from __future__ import annotations

import re

_UNITS_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}
_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")


class DurationError(ValueError):
    pass


def parse_duration_us(value: object) -> int:
    """Microseconds in a duration such as ``7d``; raises :class:`DurationError` with the accepted forms."""
    text = str(value).strip().lower() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    match = _DURATION.match(text) if text else None
    if not match or int(match.group(1)) == 0:
        raise DurationError(f"{value!r} is not a duration; write a whole number and a unit: 30m, 1h, 7d, 2w")
    return int(match.group(1)) * _UNITS_US[match.group(2)]


def format_duration_us(us: int) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        if us % _UNITS_US[unit] == 0:
            return f"{us // _UNITS_US[unit]}{unit}"
    return f"{us / 1_000_000:g}s"

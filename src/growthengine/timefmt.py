"""Parsing and printing of instants and durations as they appear on the wire (ISO-8601)."""

from __future__ import annotations

import datetime as dt
import re

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


# The instants the engine takes from the wire: from the Unix epoch (instants are stored as microseconds since it),
# to a year far enough for any test clock yet short enough that local-time and calendar arithmetic on them
# (time zones, "daily at 02:00", "+30 days") can never overflow datetime.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)


class TimeFormatError(ValueError):
    """A time or duration on the wire could not be understood."""


def check_range(instant: dt.datetime, *, field: str = "timestamp") -> dt.datetime:
    """``instant`` itself, or a :class:`TimeFormatError` if it lies outside the years the engine works in."""
    if not EARLIEST <= instant < LATEST:
        raise TimeFormatError(f"{field} must fall between the years {EARLIEST.year} and {LATEST.year - 1} (UTC)")
    return instant


def parse_instant(value: object, *, field: str = "timestamp", require_offset: bool = False) -> dt.datetime:
    """Parse an ISO-8601 instant.

    A value without an offset is taken as UTC (as Segment does with event times), or refused with
    ``require_offset`` (every time the engine's own API, CLI and settings take: 09:00 where?).
    """
    if not isinstance(value, str):
        raise TimeFormatError(f"{field} must be an ISO-8601 string, got {type(value).__name__}")
    text = value.strip()
    if not text or len(text) > 64:
        raise TimeFormatError(f"{field} is not an ISO-8601 time: {value[:64]!r}")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise TimeFormatError(f"{field} is not an ISO-8601 time: {value[:64]!r}") from None
    if parsed.tzinfo is None:
        if require_offset:
            raise TimeFormatError(f"{field} needs a UTC offset (such as +07:00 or Z): {value[:64]!r}")
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        utc = parsed.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise TimeFormatError(f"{field} is out of range: {value[:64]!r}") from None
    return check_range(utc, field=field)


def format_instant(instant: dt.datetime) -> str:
    """ISO-8601 with offset, UTC, as the API answers."""
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_iso_duration(value: object, *, field: str = "by") -> dt.timedelta:
    """Parse an ISO-8601 duration such as ``PT1H`` or ``P2DT30M`` (no months or years: they have no fixed length)."""
    if not isinstance(value, str):
        raise TimeFormatError(f"{field} must be an ISO-8601 duration string such as 'PT1H'")
    match = _DURATION.match(value.strip().upper())
    if not match or value.strip().upper() in {"P", "PT"} or value.strip().upper().endswith("T"):
        raise TimeFormatError(f"{field} is not an ISO-8601 duration (e.g. 'PT1H', 'P1D'): {value[:40]!r}")
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    try:
        return dt.timedelta(**parts)
    except OverflowError:
        raise TimeFormatError(f"{field} is too large: {value[:40]!r}") from None

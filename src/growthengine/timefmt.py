"""Parsing and printing of instants and durations as they appear on the wire (ISO-8601)."""

from __future__ import annotations

import datetime as dt
import re

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
# The durations the API takes (``PT1H``, ``P2DT30M``), as the OpenAPI document states them: at least one part,
# each part's digits bounded so that no duration overflows.
_SECONDS = r"[0-9]{1,11}(?:\.[0-9]{1,9})?S"
_TIME_PART = (r"T(?:[0-9]{1,9}H(?:[0-9]{1,10}M)?(?:" + _SECONDS + r")?|[0-9]{1,10}M(?:" + _SECONDS + r")?|"
              + _SECONDS + ")")
DURATION_PATTERN = r"^P(?:(?:[0-9]{1,6}W(?:[0-9]{1,8}D)?|[0-9]{1,8}D)(?:" + _TIME_PART + r")?|" + _TIME_PART + r")$"
_WIRE_DURATION = re.compile(DURATION_PATTERN)


# The instants the engine takes from the wire: from the Unix epoch (instants are stored as microseconds since it),
# to a year far enough for any test clock yet short enough that local-time and calendar arithmetic on them
# (time zones, "daily at 02:00", "+30 days") can never overflow datetime.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)


# The instants the wire carries, as a regular expression (the OpenAPI document states the same one): RFC 3339 as
# SDKs write it (seconds optional, any number of fractional digits, ``T``, ``t`` or a space between date and time),
# real calendar days only (29 February in leap years), years 1970 to 2999 as written, the offset optional
# (``+07:00`` or, as Java writes it, ``+0700``).
_LEAP_YEAR = r"(?:19(?:7[26]|8[048]|9[26])|2[0-9](?:0[48]|[2468][048]|[13579][26])|2[048]00)"
_DAY = (r"(?:(?:19[7-9][0-9]|2[0-9]{3})-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
        r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))|" + _LEAP_YEAR + r"-02-29)")
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])"
DATE_PATTERN = "^" + _DAY + "$"
INSTANT_PATTERN = "^" + _DAY + "[Tt ]" + _TIME + _OFFSET + "?$"
OFFSET_INSTANT_PATTERN = "^" + _DAY + "[Tt ]" + _TIME + _OFFSET + "$"
# A calendar day, an instant, or nothing (a parameter left empty takes its default).
DAY_OR_INSTANT_PATTERN = "^(?:" + _DAY + "(?:[Tt ]" + _TIME + _OFFSET + ")?)?$"
_INSTANT = re.compile(INSTANT_PATTERN)
# The shape nearly every SDK writes (``2026-01-05T08:44:46.423+07:00``, ``...Z``), a subset of INSTANT_PATTERN
# that ``datetime.fromisoformat`` reads as it is (at most six fractional digits, ``T`` and ``Z`` upper case): a
# value of this shape that ``fromisoformat`` accepts is a real calendar instant INSTANT_PATTERN accepts too.
_COMMON_INSTANT = re.compile(r"(?:19[7-9][0-9]|2[0-9]{3})-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                             r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])")
_FRACTION = re.compile(r"(\.[0-9]{6})[0-9]+")


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
    if _COMMON_INSTANT.fullmatch(value):
        try:
            common = dt.datetime.fromisoformat(value)
        except ValueError:
            pass  # 31 April and the like: the full path below says why
        else:
            utc = common.astimezone(dt.UTC)
            if EARLIEST <= utc < LATEST:
                return utc
    return _parse_any_instant(value, field, require_offset)


def _parse_any_instant(value: str, field: str, require_offset: bool) -> dt.datetime:
    """Every shape INSTANT_PATTERN takes (the common one included), with the reason when ``value`` is none."""
    if len(value) > 64 or not _INSTANT.match(value):
        raise TimeFormatError(f"{field} is not an ISO-8601 time of the years {EARLIEST.year} to {LATEST.year - 1} "
                              f"(such as 2026-01-05T09:00:00+07:00): {value[:64]!r}")
    try:  # Python reads at most 6 fractional digits (Go's RFC3339Nano writes 9)
        parsed = dt.datetime.fromisoformat(_six_digits(value).replace("z", "Z").replace("t", "T"))
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


def _six_digits(value: str) -> str:
    """``value`` with its fractional seconds cut to six digits (``_FRACTION.sub``, without a template to expand
    when there is nothing to cut: the common case)."""
    long = _FRACTION.search(value)
    return value if long is None else value[:long.end(1)] + value[long.end():]


def format_instant(instant: dt.datetime) -> str:
    """ISO-8601 with offset, UTC, as the API answers."""
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_iso_duration(value: object, *, field: str = "by") -> dt.timedelta:
    """Parse an ISO-8601 duration such as ``PT1H`` or ``P2DT30M`` (no months or years: they have no fixed length)."""
    if not isinstance(value, str):
        raise TimeFormatError(f"{field} must be an ISO-8601 duration string such as 'PT1H'")
    match = _DURATION.match(value) if len(value) <= 64 and _WIRE_DURATION.match(value) else None
    if not match:
        raise TimeFormatError(f"{field} is not an ISO-8601 duration (e.g. 'PT1H', 'P1D'): {value[:40]!r}")
    return dt.timedelta(**{k: float(v) for k, v in match.groupdict().items() if v is not None})

"""Thai-first formatting of money, instants and "time left" for message copy.

Choices (what Thai users of a consumer app expect):

* Money is THB with the baht sign in front and Thai grouping: ``฿12,500`` for whole amounts, ``฿1,234.50``
  otherwise (never ``฿12,500.00``; never rounded so far that a price changes). The same in English.
* Dates in Thai use the Buddhist-era year and the short Thai month, 24-hour time: ``25 พ.ย. 2569 14:30``
  (the style of Thai bank and delivery notifications). English uses ``25 Nov 2026, 14:30``. Both are in the
  user's timezone, ``Asia/Bangkok`` unless told otherwise.
* "Time left" is never more than the truth: it is rounded *down* (2 h 59 min left reads "2 ชม."), so a
  message can never promise time the user does not have. Below two of a unit the next smaller unit is kept
  ("1 ชม. 30 นาที"), since dropping it would understate by up to half.

Nothing here reads the wall clock: "time left" takes ``now`` from the caller.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime as babel_format_datetime
from babel.numbers import format_decimal

from growthengine.timefmt import TimeFormatError, parse_instant

BUSINESS_TZ = "Asia/Bangkok"
BUDDHIST_ERA_OFFSET = 543
LANGUAGES = ("th", "en")
DEFAULT_LANGUAGE = "th"
_CENT = Decimal("0.01")


class FormattingError(ValueError):
    """A value handed to a formatting filter is not what the filter formats (names the filter and the value)."""


def normalize_language(language: str | None) -> str:
    """``th`` or ``en``; anything else (``None``, ``"fr"``, ``"th-TH"`` aside) falls back to Thai."""
    if not language:
        return DEFAULT_LANGUAGE
    base = language.strip().lower().replace("_", "-").split("-")[0]
    return base if base in LANGUAGES else DEFAULT_LANGUAGE


def to_decimal(value: object, *, what: str = "amount") -> Decimal:
    """A number from an int, float, Decimal or numeric string (floats through their shortest repr)."""
    if isinstance(value, bool):
        raise FormattingError(f"{what} must be a number, got {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise FormattingError(f"{what} must be a number, got {value[:40]!r}") from None
    else:
        raise FormattingError(f"{what} must be a number, got {type(value).__name__}")
    if not number.is_finite():
        raise FormattingError(f"{what} must be a finite number, got {value!r}")
    return number


def format_number(value: object) -> str:
    """A plain grouped number: ``12,500``, ``1,234.5`` (as many decimals as the value has, up to 2)."""
    number = to_decimal(value, what="number").quantize(_CENT, rounding=ROUND_HALF_UP).normalize()
    pattern = "#,##0" if number == number.to_integral_value() else "#,##0.##"
    return str(format_decimal(number, format=pattern, locale="th_TH"))


def format_baht(value: object) -> str:
    """``฿12,500`` for whole amounts, ``฿1,234.50`` otherwise; negative amounts as ``-฿100``."""
    amount = to_decimal(value).quantize(_CENT, rounding=ROUND_HALF_UP)
    whole = amount == amount.to_integral_value()
    pattern = "#,##0" if whole else "#,##0.00"
    text = str(format_decimal(abs(amount), format=pattern, locale="th_TH"))
    return f"-฿{text}" if amount < 0 else f"฿{text}"


@cache
def zone(name: str | None) -> ZoneInfo:
    """The named IANA zone; an unknown or empty name gives Bangkok (the business timezone)."""
    try:
        return ZoneInfo(name or BUSINESS_TZ)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(BUSINESS_TZ)


def to_instant(value: object, *, what: str = "time") -> dt.datetime:
    """An aware instant from a datetime (naive taken as UTC) or an ISO-8601 string."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    try:
        return parse_instant(value, field=what)
    except TimeFormatError as exc:
        raise FormattingError(str(exc)) from None


def format_datetime(value: object, language: str, tz: str | None = None) -> str:
    """Thai ``25 พ.ย. 2569 14:30`` (Buddhist era) or English ``25 Nov 2026, 14:30``, in ``tz`` (Bangkok)."""
    local = to_instant(value).astimezone(zone(tz))
    if normalize_language(language) == "th":
        day_month = babel_format_datetime(local, "d MMM", locale="th_TH")
        return f"{day_month} {local.year + BUDDHIST_ERA_OFFSET} {local:%H:%M}"
    return str(babel_format_datetime(local, "d MMM y, HH:mm", locale="en"))


def format_date(value: object, language: str, tz: str | None = None) -> str:
    """The date alone: ``25 พ.ย. 2569`` or ``25 Nov 2026``."""
    local = to_instant(value).astimezone(zone(tz))
    if normalize_language(language) == "th":
        return f"{babel_format_datetime(local, 'd MMM', locale='th_TH')} {local.year + BUDDHIST_ERA_OFFSET}"
    return str(babel_format_datetime(local, "d MMM y", locale="en"))


_UNITS_TH = {"day": "วัน", "hour": "ชม.", "minute": "นาที"}
_UNITS_EN = {"day": ("day", "days"), "hour": ("hour", "hours"), "minute": ("minute", "minutes")}


def _unit(amount: int, unit: str, language: str) -> str:
    if language == "th":
        return f"{amount} {_UNITS_TH[unit]}"
    singular, plural = _UNITS_EN[unit]
    return f"{amount} {singular if amount == 1 else plural}"


def is_expired(expires_at: object, now: object) -> bool:
    """True once ``now`` has reached ``expires_at``."""
    return to_instant(now, what="now") >= to_instant(expires_at, what="expires_at")


def format_time_left(expires_at: object, now: object, language: str) -> str:
    """How long until ``expires_at``, rounded down: ``2 ชม.``, ``1 ชม. 30 นาที``, ``45 นาที``.

    English: ``2 hours``, ``1 hour 30 minutes``, ``45 minutes``. Under a minute: ``ไม่ถึง 1 นาที`` /
    ``less than a minute``; at or past the expiry: ``หมดอายุแล้ว`` / ``expired`` (templates should test
    ``is expired(now)`` and say something else rather than print that inside a sentence).
    """
    lang = normalize_language(language)
    seconds = int((to_instant(expires_at, what="expires_at") - to_instant(now, what="now")).total_seconds())
    if seconds <= 0:
        return "หมดอายุแล้ว" if lang == "th" else "expired"
    minutes_total = seconds // 60
    if minutes_total == 0:
        return "ไม่ถึง 1 นาที" if lang == "th" else "less than a minute"
    days, rem_minutes = divmod(minutes_total, 24 * 60)
    hours, minutes = divmod(rem_minutes, 60)
    if days:
        parts = [_unit(days, "day", lang)]
        if days < 2 and hours:
            parts.append(_unit(hours, "hour", lang))
    elif hours:
        parts = [_unit(hours, "hour", lang)]
        if hours < 2 and minutes:
            parts.append(_unit(minutes, "minute", lang))
    else:
        parts = [_unit(minutes, "minute", lang)]
    return " ".join(parts)

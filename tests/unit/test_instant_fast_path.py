"""``parse_instant`` reads the shape SDKs write through a shorter path: the same instant, or the same error, as the
full path for every value."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from growthengine.timefmt import TimeFormatError, _parse_any_instant, parse_instant


def _outcome(parse: object, value: str) -> tuple[str, object]:
    try:
        return "ok", parse(value)  # type: ignore[operator]
    except TimeFormatError as exc:
        return "error", str(exc)


def _full(value: str) -> dt.datetime:
    return _parse_any_instant(value, "timestamp", False)


_two = st.integers(0, 99).map(lambda n: f"{n:02d}")
_values = st.builds(
    lambda year, month, day, hour, minute, second, fraction, offset: (
        f"{year:04d}-{month}-{day}T{hour}:{minute}:{second}{fraction}{offset}"),
    st.sampled_from([1969, 1970, 1999, 2000, 2024, 2026, 2100, 2400, 2999, 3000]),
    st.sampled_from(["01", "02", "04", "12", "13", "00"]),
    st.sampled_from(["01", "28", "29", "30", "31", "32", "00"]),
    _two, _two, _two,
    st.sampled_from(["", ".4", ".423", ".123456", ".1234567", "."]),
    st.sampled_from(["Z", "+07:00", "-05:00", "+23:59", "+24:00", "-00:30", "+0700", "z", ""]),
)


@settings(max_examples=1_500, deadline=None)
@given(_values)
def test_the_short_path_agrees_with_the_full_one(value: str) -> None:
    assert _outcome(parse_instant, value) == _outcome(_full, value)


def test_fixed_examples() -> None:
    cases = ["2026-01-05T08:44:46.423+07:00", "2026-01-05T01:44:46Z", "2024-02-29T00:00:00Z", "2026-02-29T00:00:00Z",
             "2026-04-31T10:00:00+07:00", "1970-01-01T06:59:59+07:00", "1970-01-01T00:00:00Z",
             "2999-12-31T23:59:59-05:00", "2026-01-05T23:59:60Z", "2100-02-29T00:00:00Z"]
    for value in cases:
        assert _outcome(parse_instant, value) == _outcome(_full, value), value
    assert parse_instant("2026-01-05T08:44:46.423+07:00") == dt.datetime(2026, 1, 5, 1, 44, 46, 423000, tzinfo=dt.UTC)
    assert _outcome(parse_instant, "1970-01-01T06:59:59+07:00")[0] == "error"

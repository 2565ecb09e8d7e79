"""Thai numbers in E.164 or national form skip ``phonenumbers.parse``: the same answer as the full path always."""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from growthengine.domain.traits import normalize_phone


def _full_path(value: str) -> str | None:
    try:
        number = phonenumbers.parse(value, "TH")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


@settings(max_examples=2_000, deadline=None)
@given(st.sampled_from(["+66", "0", "+660", "66", "", "+1"]), st.text("0123456789", min_size=6, max_size=11))
def test_the_short_path_agrees_with_phonenumbers(prefix: str, digits: str) -> None:
    value = prefix + digits
    assert normalize_phone.__wrapped__(value) == _full_path(value)


def test_fixed_examples() -> None:
    assert normalize_phone.__wrapped__("+66812345678") == "+66812345678"
    assert normalize_phone.__wrapped__("0812345678") == "+66812345678"
    assert normalize_phone.__wrapped__("081-234-5678") == "+66812345678"  # the full path
    assert normalize_phone.__wrapped__("+66012345678") == _full_path("+66012345678")  # a zero after +66: full path
    assert normalize_phone.__wrapped__("+6611234567") == _full_path("+6611234567")

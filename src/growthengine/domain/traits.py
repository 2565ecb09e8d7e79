"""Profile traits: the known ones are checked and normalised, all are merged into the profile.

A known trait whose value the engine cannot use is dropped and reported; the rest of the call is kept (an app that
sends a malformed phone number must not lose the user's email and consent with it).
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

import phonenumbers

CHANNELS = ("push", "email", "sms", "in_app", "ads")
LANGUAGES = ("th", "en")
# Phone numbers without a country code are read as numbers of this region (the business is Thai).
PHONE_REGION = "TH"
_MAX_PHONE_LENGTH = 64

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
# A Thai number as apps send it, in E.164 (``+66812345678``) or in the national form (``0812345678``): digits only,
# no leading zero after the country code. Its E.164 form is known without ``phonenumbers.parse``; only whether it
# is a valid number is asked (a number of another shape takes the full path).
_THAI_DIGITS = re.compile(r"(?:\+66|0)([1-9][0-9]{7,8})")


class TraitError(ValueError):
    """A known trait has a value the engine cannot use."""


@dataclass(frozen=True, slots=True)
class DroppedTrait:
    """A known trait left out of a call, and why: ``path`` is ``traits.phone``, ``traits.consent.fax``, ..."""

    path: str
    message: str


def _valid_timezone(name: str) -> bool:
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, such as "America"
        return False
    return True


@functools.lru_cache(maxsize=16_384)
def normalize_phone(value: str, region: str = PHONE_REGION) -> str | None:
    """``value`` as E.164 (``081-234-5678`` -> ``+66812345678``), or None when it is not a valid number.

    Remembered for the last 16,384 numbers: an SDK sends a user's traits with every identify, and parsing a number
    (``phonenumbers``) costs about as much as all the rest of the call's validation."""
    if len(value) > _MAX_PHONE_LENGTH:
        return None
    thai = _THAI_DIGITS.fullmatch(value) if region == "TH" else None
    if thai is not None:
        national = thai.group(1)
        if phonenumbers.is_valid_number(phonenumbers.PhoneNumber(country_code=66, national_number=int(national))):
            return "+66" + national
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _shown(value: Any) -> str:
    return repr(value[:64]) if isinstance(value, str) else type(value).__name__


def _checked(key: str, value: Any) -> Any:
    """The normalised value of one known trait; :class:`TraitError` when it cannot be used."""
    if key == "email":
        if not isinstance(value, str) or not _EMAIL.match(value.strip()):
            raise TraitError("traits.email is not an email address")
        return value.strip()
    if key == "phone":
        phone = normalize_phone(value) if isinstance(value, str) else None
        if phone is None:
            raise TraitError("traits.phone is not a phone number: send E.164 such as +66812345678 "
                             "(or a Thai number such as 081-234-5678)")
        return phone
    if key == "timezone":
        if not isinstance(value, str) or not _valid_timezone(value.strip()):
            raise TraitError(f"traits.timezone is not an IANA timezone: {_shown(value)}")
        return value.strip()
    if key == "language":
        lang = value.strip().lower() if isinstance(value, str) else value
        if lang not in LANGUAGES:
            raise TraitError(f"traits.language must be one of {', '.join(LANGUAGES)}")
        return lang
    if key == "is_seller":
        if not isinstance(value, bool):
            raise TraitError("traits.is_seller must be true or false")
        return value
    if key in ("name", "province", "push_token"):
        if not isinstance(value, str):
            raise TraitError(f"traits.{key} must be a string")
        return value
    return value


def _consent(value: Any, dropped: list[DroppedTrait]) -> dict[str, bool] | None:
    """The usable channels of a ``consent`` object; each unusable one is dropped alone."""
    if not isinstance(value, dict):
        dropped.append(DroppedTrait("traits.consent", "traits.consent must be an object such as "
                                                      '{"push": true, "email": false}'))
        return None
    out: dict[str, bool] = {}
    for channel, flag in value.items():
        if channel not in CHANNELS:
            dropped.append(DroppedTrait(f"traits.consent.{channel}", f"traits.consent.{channel} is not a channel; "
                                                                     f"channels are {', '.join(CHANNELS)}"))
        elif not isinstance(flag, bool):
            dropped.append(DroppedTrait(f"traits.consent.{channel}",
                                        f"traits.consent.{channel} must be true or false"))
        else:
            out[channel] = flag
    return out if out or not value else None


def clean_traits(traits: dict[str, Any]) -> tuple[dict[str, Any], list[DroppedTrait]]:
    """The known traits of CONTRACT.md 3.1 normalised, unknown traits as they are; and what was dropped.

    A trait set to ``null`` is kept as ``None`` and clears that trait on merge.
    """
    out: dict[str, Any] = {}
    dropped: list[DroppedTrait] = []
    for key, value in traits.items():
        if value is None:
            out[key] = None
        elif key == "consent":
            consent = _consent(value, dropped)
            if consent is not None:
                out[key] = consent
        else:
            try:
                out[key] = _checked(key, value)
            except TraitError as exc:
                dropped.append(DroppedTrait(f"traits.{key}", str(exc)))
    return out, dropped


def validate_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Like :func:`clean_traits`, but strict: :class:`TraitError` for the first trait that cannot be used."""
    cleaned, dropped = clean_traits(traits)
    if dropped:
        raise TraitError(dropped[0].message)
    return cleaned


def merge_traits(existing: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """Merge validated ``incoming`` traits into ``existing``; ``consent`` merges per channel, ``null`` clears."""
    merged = dict(existing)
    for key, value in incoming.items():
        if value is None:
            merged.pop(key, None)
        elif key == "consent" and isinstance(value, dict):
            consent = dict(merged.get("consent") or {})
            consent.update(value)
            merged["consent"] = consent
        else:
            merged[key] = value
    return merged


def has_consent(traits: dict[str, Any], channel: str) -> bool:
    """A channel absent from ``consent`` is not consented."""
    consent = traits.get("consent")
    return isinstance(consent, dict) and consent.get(channel) is True

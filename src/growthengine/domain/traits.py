"""Profile traits: the known ones are validated, all are merged into the profile."""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

CHANNELS = ("push", "email", "sms", "in_app", "ads")
LANGUAGES = ("th", "en")

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


class TraitError(ValueError):
    """A known trait has a value the engine cannot use."""


def _valid_timezone(name: str) -> bool:
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, such as "America"
        return False
    return True


def validate_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Check the known traits of CONTRACT.md 3.1 and return them normalized; unknown traits pass as they are.

    A trait set to ``null`` is kept as ``None`` and clears that trait on merge.
    """
    out = dict(traits)
    for key, value in traits.items():
        if value is None:
            continue
        if key == "email":
            if not isinstance(value, str) or not _EMAIL.match(value.strip()):
                raise TraitError("traits.email is not an email address")
            out[key] = value.strip()
        elif key == "phone":
            if not isinstance(value, str) or not _E164.match(value.strip()):
                raise TraitError("traits.phone must be an E.164 number such as +66812345678")
            out[key] = value.strip()
        elif key == "timezone":
            if not isinstance(value, str) or not _valid_timezone(value.strip()):
                shown = repr(value[:64]) if isinstance(value, str) else type(value).__name__
                raise TraitError(f"traits.timezone is not an IANA timezone: {shown}")
            out[key] = value.strip()
        elif key == "language":
            lang = value.strip().lower() if isinstance(value, str) else value
            if lang not in LANGUAGES:
                raise TraitError(f"traits.language must be one of {', '.join(LANGUAGES)}")
            out[key] = lang
        elif key == "is_seller":
            if not isinstance(value, bool):
                raise TraitError("traits.is_seller must be true or false")
        elif key in ("name", "province", "push_token"):
            if not isinstance(value, str):
                raise TraitError(f"traits.{key} must be a string")
        elif key == "consent":
            if not isinstance(value, dict):
                raise TraitError("traits.consent must be an object such as {\"push\": true, \"email\": false}")
            for channel, flag in value.items():
                if channel not in CHANNELS:
                    raise TraitError(
                        f"traits.consent.{channel} is not a channel; channels are {', '.join(CHANNELS)}"
                    )
                if not isinstance(flag, bool):
                    raise TraitError(f"traits.consent.{channel} must be true or false")
    return out


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

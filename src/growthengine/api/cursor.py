"""Opaque pagination cursors."""

from __future__ import annotations

import base64
import binascii

from growthengine.api.errors import ApiError


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii").rstrip("=")


# What ``encode_cursor`` gives out (unpadded base64url), as the OpenAPI document states it.
CURSOR_PATTERN = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"


def decode_cursor(cursor: str | None) -> str | None:
    """The position a cursor names. Any well-formed cursor is a position (the ids after it follow), so one this API
    did not give out still reads: bytes that are not UTF-8 are replaced, a NUL (no id holds one) dropped."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API gave out") from None
    return raw.decode("utf-8", errors="replace").replace("\x00", "")

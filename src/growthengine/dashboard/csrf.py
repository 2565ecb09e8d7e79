"""Forms that change something carry a token bound to the session (the synchronizer-token pattern on top of the
session cookie's ``SameSite=Strict``): the HMAC of the session token, so it needs no storage of its own, ends with
the session, and cannot be made by a page that cannot read the (HttpOnly) cookie."""

from __future__ import annotations

import hashlib
import hmac

FIELD = "csrf"
HEADER = "x-csrf-token"


def csrf_token(session: str | None) -> str:
    if not session:
        return ""
    return hmac.new(session.encode(), b"growth-dashboard-csrf", hashlib.sha256).hexdigest()


def csrf_ok(session: str | None, sent: str | None) -> bool:
    expected = csrf_token(session)
    return bool(expected) and bool(sent) and hmac.compare_digest(expected, sent or "")

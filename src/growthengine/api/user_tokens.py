"""App tokens (CONTRACT.md 3.3): an app reads its own user's inbox with ``X-Growth-User-Token``, not an API key.

The token is the hex HMAC-SHA256 of the user id under ``GROWTH_USER_TOKEN_SECRET``, made by the app's backend (as
Intercom's and Braze's SDK authentication do). It opens that user's inbox only; the admin key opens every inbox; a
write key (which ships inside apps) opens none.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError

HEADER = "X-Growth-User-Token"


def user_token(secret: str, user_id: str) -> str:
    """The token of ``user_id``: what the app's backend computes and hands to the signed-in app."""
    return hmac.new(secret.encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def token_matches(secret: str, user_id: str, token: str) -> bool:
    """Whether ``token`` is ``user_id``'s token (compared in constant time)."""
    return hmac.compare_digest(user_token(secret, user_id).encode(), token.strip().lower().encode("utf-8"))


def require_user_or_admin(request: Request) -> None:
    """The path's ``userId`` own token, else the admin key (as every admin route)."""
    token = request.headers.get(HEADER)
    if token is None:
        require_admin(request)
        return
    secret = get_engine(request).settings.user_token_secret
    if not secret:
        raise ApiError(401, "unauthorized", f"{HEADER} is not accepted: this engine has no GROWTH_USER_TOKEN_SECRET")
    if not token_matches(secret, request.path_params.get("userId", ""), token):
        raise ApiError(403, "forbidden", f"this {HEADER} does not open this user's inbox")

"""Request-scoped lookups: the engine, and who is calling."""

from __future__ import annotations

from fastapi import Request

from growthengine.api.auth import KeyRing, Role, key_from_header
from growthengine.api.errors import ApiError
from growthengine.engine import Engine

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="growth", Basic realm="growth"'}


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _role(request: Request) -> Role:
    keys: KeyRing = request.app.state.keys
    key = key_from_header(request.headers.get("authorization"))
    if key is None:
        raise ApiError(401, "unauthorized", "send an API key: Authorization: Bearer <key>", headers=_CHALLENGE)
    role = keys.role_of(key)
    if role is None:
        raise ApiError(401, "unauthorized", "the API key is not known", headers=_CHALLENGE)
    return role


def require_write(request: Request) -> Role:
    """Ingestion routes: an admin key or a write key."""
    return _role(request)


def require_admin(request: Request) -> Role:
    role = _role(request)
    if role != "admin":
        raise ApiError(403, "forbidden", "this key may only send events; this route needs the admin key")
    return role

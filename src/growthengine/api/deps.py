"""Request-scoped lookups: the engine, and who is calling."""

from __future__ import annotations

from fastapi import Request

from growthengine.api.auth import KeyGuard, Role
from growthengine.api.errors import ApiError
from growthengine.engine import Engine


def get_engine(request: Request) -> Engine:
    """The engine, following the stored config (at most once a second on the real clock, where the workers
    back-fill; under the manual clock at once, and this one process does it all)."""
    engine: Engine = request.app.state.engine
    engine.follow_config_soon(apply=engine.manual)
    return engine


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _role(request: Request, *, ingest: bool = False) -> Role:
    guard: KeyGuard = request.app.state.guard
    return guard.check(request.headers.get("authorization"), client_address(request), ingest=ingest).role


def require_write(request: Request) -> Role:
    """Ingestion routes: an admin key or a write key, within the key's ingest rate."""
    return _role(request, ingest=True)


def require_admin(request: Request) -> Role:
    role = _role(request)
    if role != "admin":
        raise ApiError(403, "forbidden", "this key may only send events; this route needs the admin key")
    return role

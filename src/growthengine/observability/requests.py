"""The request middleware: a request id for every log line a request causes, request metrics, the access log.

A client's ``X-Request-Id`` is kept when it is a sane token (letters, digits, ``.-_:``, at most 128), else one is
made; the answer carries it back. The access log (``GROWTH_ACCESS_LOG=1``) and the metrics name the route by its
template (``/v1/users/{user_id}``), never the path a client sent: paths and query strings can carry user ids.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from growthengine.observability.logs import request_id
from growthengine.observability.metrics import EngineMetrics

access = logging.getLogger("growthengine.access")

_SANE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_HEADER = b"x-request-id"


def _incoming_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            if _SANE_ID.match(value):
                return str(value.decode("ascii"))
            break
    return secrets.token_hex(8)


def route_of(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "other"  # not an API route: the OpenAPI document, static files, a path that does not exist


class RequestContext:
    """Pure ASGI (no per-request task or body buffering): a few microseconds a request."""

    def __init__(self, app: ASGIApp, metrics: EngineMetrics, *, access_log: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_id(scope)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        header = (_HEADER, rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_of(scope)
            self.metrics.observe_request(route, scope["method"], status, seconds)
            if self.access_log:
                access.info("%s %s %d %.1fms", scope["method"], route, status, seconds * 1000,
                            extra={"fields": {"method": scope["method"], "route": route, "status": status,
                                              "ms": round(seconds * 1000, 2)}})
            request_id.reset(token)

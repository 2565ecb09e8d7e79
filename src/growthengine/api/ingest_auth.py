"""Who may send events: a key in the ``Authorization`` header, or (analytics.js) a ``writeKey`` in the body.

A browser SDK that posts ``text/plain`` bodies sends no header (so that the browser needs no CORS preflight); its
write key travels in the JSON instead. That key is checked exactly as if it had come as ``Bearer <key>``.
"""

from __future__ import annotations

from fastapi import Request

from growthengine.api.auth import Role
from growthengine.api.body import read_json_once, write_key_in_body
from growthengine.api.deps import get_engine, require_write
from growthengine.api.errors import ApiError


def _with_bearer(request: Request, key: str) -> Request:
    """The same request, as if the key had come in the ``Authorization`` header."""
    headers = [(k, v) for k, v in request.scope["headers"] if k != b"authorization"]
    headers.append((b"authorization", b"Bearer " + key.encode("utf-8")))
    return Request({**request.scope, "headers": headers}, request.receive)


async def require_ingest(request: Request) -> Role:
    """Ingestion routes: an admin or write key, from the header or else from the body's ``writeKey``."""
    if request.headers.get("authorization"):
        return require_write(request)
    try:
        payload = await read_json_once(request, max_bytes=get_engine(request).settings.max_body_bytes)
    except ApiError:
        payload = None
    key = write_key_in_body(payload)
    return require_write(request if key is None else _with_bearer(request, key))  # no key at all: 401

"""CORS for browser SDKs (analytics.js, RudderStack's JavaScript SDK): origins from ``GROWTH_CORS_ORIGINS``.

No credentials (cookies) are ever allowed across origins: browser SDKs authenticate with a write key, and the
dashboard's cookie stays same-site. A refused preflight answers in the API's error shape and says what to set.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

METHODS = ("GET", "POST", "PUT", "DELETE", "OPTIONS")
# Headers a page's script may read from an answer.
EXPOSED = ("Retry-After", "X-Request-Id")


class EngineCORS(CORSMiddleware):
    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        super().__init__(app, allow_origins=list(origins), allow_methods=METHODS, allow_headers=["*"],
                         allow_credentials=False, expose_headers=EXPOSED, max_age=86400)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        if "origin" in refused:
            message = (f"the origin {request_headers['origin'][:200]!r} may not call this API from a browser; "
                       "add it to GROWTH_CORS_ORIGINS (comma-separated)")
        else:
            message = f"this cross-origin request is not allowed ({refused})"
        body = orjson.dumps({"error": {"code": "cors_refused", "message": message, "details": []}})
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return Response(body, status_code=403, media_type="application/json", headers=headers)

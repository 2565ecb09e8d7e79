"""Provider webhooks: delivery feedback, verified by each provider's signature (no API key).

Answers (once the feedback is stored in the log as `message_feedback` commands; the flows stage applies them):
200 with how many events move their message forward; 401 when the request is not genuine or its signed time is
more than 5 minutes from now; 409 when every event in it was received before (a replay); 404 for a provider that is
not configured.

Providers whose signature covers the URL (Twilio) are handed the URL the service called, which behind a
TLS-terminating proxy is not the one the engine sees: the candidates are the configured public URL
(``GROWTH_PUBLIC_URL``) with this request's path and query, the URL told by forwarded headers when the peer is a
trusted proxy (``FORWARDED_ALLOW_IPS``, as uvicorn reads it; 127.0.0.1 by default), and the URL as seen.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from growthengine.api.deps import get_engine
from growthengine.api.errors import ApiError
from growthengine.channels.providers.base import REQUEST_URL_HEADER, REQUEST_URLS_HEADER
from growthengine.engine import Engine
from growthengine.flows.feedback import UnknownWebhook, WebhookRejected, WebhookReplayed

router = APIRouter(tags=["webhooks"])
log = logging.getLogger(__name__)


@router.post("/webhooks/{provider}", responses={400: {}, 401: {}, 404: {}, 409: {}})
async def webhook(request: Request, provider: str = Path(..., max_length=40),
                  engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    body = await request.body()
    if len(body) > 5 * 1024 * 1024:
        raise ApiError(413, "payload_too_large", "a webhook body is at most 5 MB")
    headers = {k.lower(): v for k, v in request.headers.items()}
    urls = request_urls(request, engine.settings.public_url)
    headers[REQUEST_URL_HEADER] = urls[0]
    headers[REQUEST_URLS_HEADER] = " ".join(urls)
    try:
        applied = engine.handle_webhook(provider, headers, body)
    except UnknownWebhook as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except WebhookRejected as exc:
        engine.webhooks_rejected[provider] = engine.webhooks_rejected.get(provider, 0) + 1
        log.warning("webhook from %s refused: %s", provider, exc)
        raise ApiError(401, "webhook_rejected", f"refused: {exc}") from None
    except WebhookReplayed as exc:
        log.warning("webhook from %s refused: %s", provider, exc)
        raise ApiError(409, "webhook_replayed", f"refused: {exc}") from None
    return {"applied": applied}


def request_urls(request: Request, public_url: str | None, allow_ips: str | list[str] | None = None) -> list[str]:
    """The URLs the service may have called for this request, most likely first (no duplicates)."""
    tail = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    candidates = []
    if public_url:
        base = public_url.rstrip("/")
        root = request.scope.get("root_path", "") or ""
        candidates.append(base + (tail[len(root):] if root and tail.startswith(root) else tail))
    forwarded = _forwarded_url(request, tail, allow_ips)
    if forwarded:
        candidates.append(forwarded)
    candidates.append(str(request.url))
    return list(dict.fromkeys(candidates))


def _trusted(request: Request, allow_ips: str | list[str] | None) -> bool:
    raw = allow_ips if allow_ips is not None else os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
    allowed = [part.strip() for part in (raw.split(",") if isinstance(raw, str) else raw) if part.strip()]
    if "*" in allowed:
        return True
    peer = request.client.host if request.client else None
    if not peer:
        return False
    for entry in allowed:
        try:
            if ipaddress.ip_address(peer) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            if peer == entry:
                return True
    return False


def _forwarded_url(request: Request, tail: str, allow_ips: str | list[str] | None) -> str | None:
    """``proto://host/path?query`` from ``Forwarded`` (RFC 7239) or ``X-Forwarded-Proto``/``-Host``/``-Port``."""
    headers = request.headers
    proto = host = None
    forwarded = headers.get("forwarded")
    if forwarded:
        first = forwarded.split(",")[0]
        for pair in first.split(";"):
            name, _, value = pair.strip().partition("=")
            value = value.strip().strip('"')
            if name.lower() == "proto":
                proto = value
            elif name.lower() == "host":
                host = value
    proto = proto or _first(headers.get("x-forwarded-proto"))
    host = host or _first(headers.get("x-forwarded-host"))
    port = _first(headers.get("x-forwarded-port"))
    if not (proto or host) or not _trusted(request, allow_ips):
        return None
    proto = (proto or request.url.scheme).lower()
    if proto not in ("http", "https"):
        return None
    host = host or headers.get("host") or request.url.netloc
    if port and ":" not in host.rsplit("]", 1)[-1] and port != {"https": "443", "http": "80"}[proto]:
        host = f"{host}:{port}"
    return f"{proto}://{host}{tail}"


def _first(value: str | None) -> str | None:
    if not value:
        return None
    return value.split(",")[0].strip() or None

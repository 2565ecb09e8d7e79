"""Provider webhooks: delivery feedback, verified by each provider's signature (no API key)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from growthengine.api.deps import get_engine
from growthengine.api.errors import ApiError
from growthengine.channels.providers.base import REQUEST_URL_HEADER
from growthengine.engine import Engine
from growthengine.flows.feedback import UnknownWebhook, WebhookRejected

router = APIRouter(tags=["webhooks"])
log = logging.getLogger(__name__)


@router.post("/webhooks/{provider}", responses={400: {}, 401: {}, 404: {}})
async def webhook(request: Request, provider: str = Path(..., max_length=40),
                  engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    body = await request.body()
    if len(body) > 5 * 1024 * 1024:
        raise ApiError(413, "payload_too_large", "a webhook body is at most 5 MB")
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers[REQUEST_URL_HEADER] = str(request.url)
    try:
        applied = engine.handle_webhook(provider, headers, body)
    except UnknownWebhook as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except WebhookRejected as exc:
        engine.webhooks_rejected[provider] = engine.webhooks_rejected.get(provider, 0) + 1
        log.warning("webhook from %s refused: %s", provider, exc)
        raise ApiError(401, "webhook_rejected", f"refused: {exc}") from None
    return {"applied": applied}

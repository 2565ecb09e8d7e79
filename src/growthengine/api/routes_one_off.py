"""A template previewed for one user, and a test message sent now (CONTRACT.md 11)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from growthengine.api.body import read_json
from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.routes_config import KEY_PATTERN
from growthengine.api.routes_messages import message_json
from growthengine.api.schemas import ERROR_RESPONSES, TemplatePreview, TestMessageResult
from growthengine.api.wire_schemas import body_doc
from growthengine.clock import to_us
from growthengine.engine import Engine
from growthengine.flows.one_off import OneOffRefused, render_for_user, send_test

router = APIRouter(prefix="/v1", tags=["config"], dependencies=[Depends(require_admin)])

MAX_BYTES = 64 * 1024
_USER = {"type": "string", "minLength": 1, "maxLength": 300}
_VALUES = {"type": "object", "description": "values a flow run would give the template (product, coupon, ...)"}
PREVIEW_BODY: dict[str, Any] = {"type": "object", "required": ["userId"],
                                "properties": {"userId": _USER, "values": _VALUES}}
TEST_BODY: dict[str, Any] = {
    "type": "object", "required": ["userId", "template", "channel"],
    "properties": {"userId": _USER, "template": {"type": "string", "minLength": 1, "maxLength": 100,
                                                 "pattern": KEY_PATTERN},
                   "channel": {"type": "string", "enum": ["push", "email", "sms", "in_app"]}, "values": _VALUES},
}


async def _body(request: Request, schema: dict[str, Any]) -> dict[str, Any]:
    body = await read_json(request, max_bytes=MAX_BYTES)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    for name in schema["required"]:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise ApiError(400, "invalid_request", f"{name}: required, a non-empty string")
        if len(value) > 300:
            raise ApiError(400, "invalid_request", f"{name}: at most 300 characters")
    channel = body.get("channel")
    if "channel" in schema["required"] and channel not in ("push", "email", "sms", "in_app"):
        raise ApiError(400, "invalid_request", "channel: one of push, email, sms, in_app")
    template = body.get("template")
    if isinstance(template, str) and len(template) > 100:
        raise ApiError(400, "invalid_request", "template: at most 100 characters")
    values = body.get("values")
    if values is not None and not isinstance(values, dict):
        raise ApiError(400, "invalid_request", "values: an object")
    return body


def _refused(exc: OneOffRefused) -> ApiError:
    return ApiError(exc.status, "not_found" if exc.status == 404 else "cannot_render", str(exc))


@router.post("/config/templates/{key}/preview", response_model=TemplatePreview, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(PREVIEW_BODY))
async def preview_template(request: Request,
                           key: str = Path(..., min_length=1, max_length=100, pattern=KEY_PATTERN),
                           engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """The template rendered as that user would get it (Thai or English by the user's language); saves nothing."""
    body = await _body(request, PREVIEW_BODY)
    try:
        with engine.store.read() as tx:
            preview = render_for_user(tx, engine.flows.runner, key, body["userId"], to_us(engine.clock.now()),
                                      body.get("values"))
    except OneOffRefused as exc:
        raise _refused(exc) from None
    rendered = preview.rendered
    parts = {"title": rendered.title, "subject": rendered.subject, "html": rendered.html,
             "imageUrl": rendered.image_url, "variant": rendered.variant}
    return {"template": key, "channel": preview.channel, "language": rendered.language, "body": rendered.body,
            **parts}


@router.post("/messages/test", response_model=TestMessageResult, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(TEST_BODY))
async def test_message(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """One test message now through the real send path: consent applies (a refusal says why in ``reason``)."""
    body = await _body(request, TEST_BODY)
    try:
        with engine.store.transaction() as tx:
            message = send_test(tx, engine.flows.runner, body["template"], body["userId"], body["channel"],
                                to_us(engine.clock.now()), body.get("values"))
    except OneOffRefused as exc:
        raise _refused(exc) from None
    engine.after_ingest()  # deliver it (at once under the manual clock)
    with engine.store.read() as tx:
        final = tx.messages.get(message.id) or message
    sent = final.status in ("sent", "delivered", "opened", "clicked")
    return {"sent": sent, "reason": None if sent else (final.reason or final.status), "message": message_json(final)}

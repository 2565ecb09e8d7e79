"""A flow's path for a chosen user, "what would happen" (CONTRACT.md 11, issue 15): the saved flow or a draft,
validated as its PUT would be, walked for the user as of the engine's clock; nothing is saved or sent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from growthengine.api.body import read_json
from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.routes_config import KEY_PATTERN, MAX_ITEM_BYTES, _refused
from growthengine.api.schemas import ERROR_RESPONSES, FlowPathView
from growthengine.api.wire_schemas import body_doc
from growthengine.clock import to_us
from growthengine.config.errors import ConfigError
from growthengine.config.versions import load_merged
from growthengine.engine import Engine
from growthengine.flows.model import Flow
from growthengine.flows.one_off import OneOffRefused
from growthengine.flows.path_preview import preview_path

router = APIRouter(prefix="/v1", tags=["config"], dependencies=[Depends(require_admin)])

PATH_BODY: dict[str, Any] = {
    "type": "object", "required": ["userId"],
    "properties": {
        "userId": {"type": "string", "minLength": 1, "maxLength": 300},
        "flow": {"type": "object", "description": "a draft of the flow in its YAML shape (as for its PUT); "
                                                  "without it (or {}), the saved flow"},
        "trigger": {"type": "object", "description": "the properties of a trigger event assumed now (an event "
                                                     "trigger), instead of the user's latest matching event"},
    },
}


def _flow(engine: Engine, key: str, draft: dict[str, Any] | None) -> Flow:
    if draft:
        try:
            with engine.store.read() as tx:
                config = load_merged(tx.conn, engine.settings.config_file, changes=[("flow", key, draft)])
        except ConfigError as exc:
            raise _refused(exc) from None
        flow = config.flows.get(key)
    else:
        flow = engine.config.flows.get(key)
    if flow is None:
        raise ApiError(404, "not_found", f"no flow {key!r}")
    return flow


@router.post("/config/flows/{key}/preview", response_model=FlowPathView, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(PATH_BODY))
async def preview_flow_path(request: Request,
                            key: str = Path(..., min_length=1, max_length=100, pattern=KEY_PATTERN,
                                            description="the flow's key"),
                            engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """What would happen if the user entered the flow now: whether they enter (and why), the exit rules, then each
    step in order with its time (in the business time zone too): waits, branches on the user's data, and each send
    with what the one send decision would decide then (channel and its switch, consent, holdout, quiet hours, caps,
    address, send time, each with its reason) and the message as the user would get it. Saves and sends nothing."""
    body = await read_json(request, max_bytes=MAX_ITEM_BYTES)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object: {\"userId\", \"flow\"?, \"trigger\"?}")
    user = body.get("userId")
    if not isinstance(user, str) or not user or len(user) > 300:
        raise ApiError(400, "invalid_request", "userId: required, a non-empty string of at most 300 characters")
    for name in ("flow", "trigger"):
        if name in body and not isinstance(body[name], dict):
            raise ApiError(400, "invalid_request", f"{name}: an object")
    flow = _flow(engine, key, body.get("flow"))
    try:
        path = preview_path(engine.store, engine.flows, flow, user, to_us(engine.clock.now()),
                            body.get("trigger") or None)
    except OneOffRefused as exc:
        raise ApiError(exc.status, "not_found" if exc.status == 404 else "cannot_preview", str(exc)) from None
    return path.as_json()

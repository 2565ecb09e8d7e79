"""One-off broadcasts (CONTRACT.md 11): a template to a segment's members, through the gate, with counts after."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from growthengine.api.body import read_json
from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.routes_config import KEY_PATTERN, changed_by
from growthengine.api.schemas import ERROR_RESPONSES, BroadcastView
from growthengine.api.wire_schemas import body_doc
from growthengine.clock import from_us, to_us
from growthengine.engine import Engine
from growthengine.flows.broadcasts import BEST_TIME, BROADCAST_FLOW, create
from growthengine.flows.one_off import OneOffRefused
from growthengine.storage.broadcast_store import Broadcast, BroadcastStore
from growthengine.timefmt import OFFSET_INSTANT_PATTERN, TimeFormatError, format_instant, parse_instant

router = APIRouter(prefix="/v1", tags=["broadcasts"], dependencies=[Depends(require_admin)])

_KEY = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": KEY_PATTERN}
BROADCAST_BODY: dict[str, Any] = {
    "type": "object", "required": ["name", "segment", "template", "channel", "at"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "segment": _KEY, "template": _KEY,
        "channel": {"type": "string", "enum": ["push", "email", "sms", "in_app"]},
        "at": {"anyOf": [{"type": "string", "enum": [BEST_TIME]},
                         {"type": "string", "maxLength": 64, "pattern": OFFSET_INSTANT_PATTERN}],
               "description": "an instant with its UTC offset, or best_time (each member's, within 24 h)"},
    },
}
_SENT = ("sent", "delivered", "opened", "clicked")


def _read(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    for name in ("name", "segment", "template", "channel", "at"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ApiError(400, "invalid_request", f"{name}: required, a non-empty string")
    if len(body["name"]) > 200 or len(body["segment"]) > 100 or len(body["template"]) > 100:
        raise ApiError(400, "invalid_request", "name (200), segment and template (100 each) are too long")
    if body["channel"] not in ("push", "email", "sms", "in_app"):
        raise ApiError(400, "invalid_request", "channel: one of push, email, sms, in_app")
    return body


def view(engine: Engine, broadcast: Broadcast) -> dict[str, Any]:
    with engine.store.read() as tx:
        counts = {status: n for (step, status), n in tx.messages.step_counts(BROADCAST_FLOW).items()
                  if step == broadcast.id}
    return {"id": broadcast.id, "name": broadcast.name, "segment": broadcast.segment,
            "template": broadcast.template, "channel": broadcast.channel, "at": broadcast.at,
            "sendAt": format_instant(from_us(broadcast.at_us)) if broadcast.at_us is not None else None,
            "members": broadcast.members, "createdBy": broadcast.created_by,
            "createdAt": format_instant(from_us(broadcast.created_us)),
            "counts": {"messages": sum(counts.values()), "sent": sum(counts.get(s, 0) for s in _SENT),
                       "byStatus": counts}}


@router.post("/broadcasts", response_model=BroadcastView, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(BROADCAST_BODY))
async def create_broadcast(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """A one-off send of a template to a segment's current members, at an instant or at each member's best time,
    through the gate (consent, quiet hours, caps); its messages carry ``broadcast`` (its id)."""
    body = _read(await read_json(request, max_bytes=16 * 1024))
    at_us: int | None = None
    if body["at"] != BEST_TIME:
        try:
            at_us = to_us(parse_instant(body["at"], field="at", require_offset=True))
        except TimeFormatError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
    if body["segment"] not in engine.segments.segments:
        raise ApiError(422, "invalid", f"no segment {body['segment']!r}")
    now_us = to_us(engine.clock.now())
    try:
        with engine.store.transaction() as tx:
            broadcast = create(tx, engine.flows.runner, name=body["name"], segment=body["segment"],
                               template=body["template"], channel=body["channel"], at=body["at"],
                               at_us=max(at_us, now_us) if at_us is not None else None,
                               created_by=changed_by(request), now_us=now_us)
    except OneOffRefused as exc:
        raise ApiError(exc.status, "invalid", str(exc)) from None
    engine.after_ingest()  # the members' owners send it (at once under the manual clock)
    return view(engine, broadcast)


@router.get("/broadcasts/{broadcastId}", response_model=BroadcastView, responses=ERROR_RESPONSES)
async def get_broadcast(broadcastId: str = Path(..., min_length=1, max_length=32),  # noqa: N803
                        engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """The broadcast with its messages' counts (sent, and by status: suppressed, scheduled, ...)."""
    with engine.store.read() as tx:
        broadcast = BroadcastStore(tx.conn).get(broadcastId)
    if broadcast is None:
        raise ApiError(404, "not_found", f"no broadcast {broadcastId!r}")
    return view(engine, broadcast)

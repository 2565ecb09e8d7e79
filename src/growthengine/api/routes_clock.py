"""The test clock (CONTRACT.md 3.4)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request

from growthengine.api.body import read_json
from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.schemas import ERROR_RESPONSES, AdvanceResponse, ClockView
from growthengine.api.wire_schemas import ADVANCE, body_doc
from growthengine.clock import ClockError, ManualClock
from growthengine.engine import Engine
from growthengine.timefmt import (
    LATEST,
    TimeFormatError,
    format_instant,
    parse_instant,
    parse_iso_duration,
)

MAX_ADVANCE = dt.timedelta(days=366 * 5)

router = APIRouter(prefix="/v1", tags=["clock"], dependencies=[Depends(require_admin)])


@router.get("/clock", response_model=ClockView, responses=ERROR_RESPONSES)
async def get_clock(engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    return {"now": format_instant(engine.clock.now()), "mode": engine.clock.mode}


@router.post("/clock/advance", response_model=AdvanceResponse, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(ADVANCE))
async def advance_clock(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    if not isinstance(engine.clock, ManualClock):
        raise ApiError(409, "clock_not_manual",
                       "the engine runs on the real clock; start it with --clock manual --start ISO")
    payload = await read_json(request, max_bytes=64 * 1024)
    if not isinstance(payload, dict) or (payload.get("to") is None) == (payload.get("by") is None):
        raise ApiError(400, "invalid_body", 'send exactly one of {"to": ISO} or {"by": "PT1H"}')
    now = engine.clock.now()
    try:
        if payload.get("to") is not None:
            target = parse_instant(payload["to"], field="to", require_offset=True)
        else:
            step = parse_iso_duration(payload["by"], field="by")
            # Well-formed, yet where the clock stands decides whether it may go that far: a conflict (409).
            target = now + min(step, MAX_ADVANCE + dt.timedelta(days=1))
            if target >= LATEST:
                raise ApiError(409, "clock_out_of_range", f"the clock stops before {format_instant(LATEST)}; "
                                                          f"it is {format_instant(now)}")
    except TimeFormatError as exc:
        raise ApiError(400, "invalid_time", str(exc)) from None
    # Where the clock stands decides the rest: conflicts with its state (409), not malformed requests.
    if target - now > MAX_ADVANCE:
        raise ApiError(409, "advance_too_far", "one advance moves the clock at most 5 years (366 * 5 days); "
                                               "advance in steps")
    if target < now:
        raise ApiError(409, "clock_backwards",
                       f"the clock only moves forward; it is {format_instant(now)} and 'to' is earlier")
    try:
        processed = engine.advance(target)
    except ClockError as exc:
        raise ApiError(409, "clock_backwards", str(exc)) from None
    return {"now": format_instant(engine.clock.now()), "processed": processed}

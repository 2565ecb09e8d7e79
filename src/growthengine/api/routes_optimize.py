"""Send-time and channel-preference answers (CONTRACT.md 3.2)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.schemas import ERROR_RESPONSES
from growthengine.api.wire_schemas import NO_NUL
from growthengine.engine import Engine
from growthengine.timefmt import (
    DURATION_PATTERN,
    OFFSET_INSTANT_PATTERN,
    TimeFormatError,
    parse_instant,
    parse_iso_duration,
)

router = APIRouter(prefix="/v1", tags=["optimization"], dependencies=[Depends(require_admin)])


@router.get("/users/{userId}/send-time", responses=ERROR_RESPONSES)
async def send_time(
    user_id: str = Path(..., alias="userId", max_length=300, pattern=NO_NUL),
    channel: Literal["push", "email", "sms", "in_app"] = Query("push"),
    after: str | None = Query(None, max_length=64, json_schema_extra={"pattern": OFFSET_INSTANT_PATTERN},
                              description="the earliest time to send, with its UTC offset; default now"),
    within: str = Query("PT24H", max_length=64, json_schema_extra={"pattern": DURATION_PATTERN},
                        description="how far ahead to look, an ISO-8601 duration of at most P14D (422 past it)"),
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    try:
        start = parse_instant(after, field="after", require_offset=True) if after is not None else None
        span = parse_iso_duration(within, field="within")
    except TimeFormatError as exc:
        raise ApiError(400, "invalid_time", str(exc)) from None
    if span > dt.timedelta(days=14):
        raise ApiError(422, "invalid_time", "within must be at most P14D")
    answer = engine.send_time(user_id, channel, start, span)
    if answer is None:
        raise ApiError(404, "not_found", f"no user {user_id!r}")
    return answer


@router.get("/users/{userId}/channel-scores", responses=ERROR_RESPONSES)
async def channel_scores(user_id: str = Path(..., alias="userId", max_length=300, pattern=NO_NUL),
                         engine: Engine = Depends(get_engine)) -> dict[str, float]:
    scores = engine.channel_scores(user_id)
    if scores is None:
        raise ApiError(404, "not_found", f"no user {user_id!r}")
    return scores

"""Segments: sizes, definitions and members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from growthengine.api.cursor import CURSOR_PATTERN, decode_cursor, encode_cursor
from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.schemas import ERROR_RESPONSES, MembersPage, SegmentSummary
from growthengine.engine import Engine

router = APIRouter(prefix="/v1", tags=["segments"], dependencies=[Depends(require_admin)])


@router.get("/segments", response_model=list[SegmentSummary], responses=ERROR_RESPONSES)
async def list_segments(engine: Engine = Depends(get_engine)) -> list[dict[str, Any]]:
    sizes = engine.segment_sizes()
    return [
        {"key": key, "name": seg.name, "refresh": seg.refresh, "size": sizes.get(key, 0),
         "description": seg.description}
        for key, seg in engine.segments.segments.items()
    ]


@router.get("/segments/{key}/members", response_model=MembersPage, responses=ERROR_RESPONSES)
async def segment_members(
    key: str = Path(..., max_length=100),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=2000, pattern=CURSOR_PATTERN, description="next of the page before"),
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    if key not in engine.segments.segments:
        raise ApiError(404, "not_found", f"no segment {key!r}")
    after = decode_cursor(cursor)
    members = engine.segment_members(key, after=after, limit=limit + 1)
    more = len(members) > limit
    members = members[:limit]
    return {"members": members, "next": encode_cursor(members[-1]) if more and members else None}

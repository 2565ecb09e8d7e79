"""Segment-compatible ingestion: identify, track, page, screen, alias, group and batch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from growthengine.api.body import read_json
from growthengine.api.deps import get_engine, require_write
from growthengine.api.errors import ApiError
from growthengine.api.schemas import (
    ERROR_RESPONSES,
    BatchBody,
    IdentifyBody,
    IngestResponse,
    TrackBody,
    body_doc,
)
from growthengine.engine import Engine

router = APIRouter(prefix="/v1", tags=["ingestion"], dependencies=[Depends(require_write)])


async def _single(request: Request, engine: Engine, call_type: str) -> dict[str, Any]:
    payload = await read_json(request, max_bytes=engine.settings.max_body_bytes)
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_body", f"the body must be a JSON object (a {call_type} call)")
    result = engine.ingest([payload], default_type=call_type)
    if result.rejected:
        error = result.rejected[0].error
        raise ApiError(400, "invalid_call", error, [{"index": 0, "error": error}])
    return result.as_dict()


@router.post("/identify", response_model=IngestResponse, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(IdentifyBody), summary="Identify a user and merge traits")
async def identify(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    return await _single(request, engine, "identify")


@router.post("/track", response_model=IngestResponse, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(TrackBody), summary="Record an event")
async def track(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    return await _single(request, engine, "track")


@router.post("/page", response_model=IngestResponse, responses=ERROR_RESPONSES,
             include_in_schema=False)
async def page(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    return await _single(request, engine, "page")


@router.post("/screen", response_model=IngestResponse, include_in_schema=False)
async def screen(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    return await _single(request, engine, "screen")


@router.post("/alias", response_model=IngestResponse, include_in_schema=False)
async def alias(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    return await _single(request, engine, "alias")


@router.post("/group", response_model=IngestResponse, include_in_schema=False)
async def group(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    return await _single(request, engine, "group")


@router.post("/batch", response_model=IngestResponse, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(BatchBody), summary="Record up to 1,000 calls at once")
async def batch(request: Request, engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    payload = await read_json(request, max_bytes=engine.settings.max_body_bytes)
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise ApiError(400, "invalid_body", 'the body must be {"batch": [call, ...]}')
    items = payload["batch"]
    limit = engine.settings.max_batch_items
    if len(items) > limit:
        raise ApiError(413, "batch_too_large", f"a batch holds at most {limit} calls; this one has {len(items)}")
    return engine.ingest(items, batch_sent_at=payload.get("sentAt")).as_dict()

"""Segment-compatible ingestion: identify, track, page, screen, alias, group and batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

from growthengine.api.body import read_json_once
from growthengine.api.deps import get_engine
from growthengine.api.errors import ApiError
from growthengine.api.group_commit import GroupCommit
from growthengine.api.ingest_auth import require_ingest
from growthengine.api.responses import OrjsonResponse
from growthengine.api.schemas import ERROR_RESPONSES, IngestResponse
from growthengine.api.wire_schemas import BATCH, IDENTIFY, TRACK, body_doc
from growthengine.engine import Engine
from growthengine.ingest.service import IngestRequest, IngestResult

# The hot path of the engine. Requests that arrive together are stored in one transaction (``group_commit``).
# The dependencies are ``async`` (FastAPI runs a plain ``def`` dependency in a worker thread: two thread hand-offs
# a request), and the answers are written straight by orjson (``response_model`` documents them; validating our
# own result again would only cost time).


async def _engine(request: Request) -> Engine:
    return get_engine(request)


router = APIRouter(prefix="/v1", tags=["ingestion"], dependencies=[Depends(require_ingest)])


def _answer(result: IngestResult) -> OrjsonResponse:
    return OrjsonResponse(result.as_dict())


async def _store(request: Request, engine: Engine, calls: IngestRequest) -> IngestResult:
    """Store one request's calls, in a group commit with the requests that came with it."""
    state = request.app.state
    commits: GroupCommit | None = getattr(state, "ingest_group_commit", None)
    if commits is None:
        commits = state.ingest_group_commit = GroupCommit(engine.ingestion, after=engine.after_ingest)
    result = await commits.ingest(calls)
    state.metrics.observe_ingest(result)  # growth_events_ingested_total and friends: once per request
    return result


async def _single(request: Request, engine: Engine, call_type: str) -> OrjsonResponse:
    payload = await read_json_once(request, max_bytes=engine.settings.max_body_bytes)
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_body", f"the body must be a JSON object (a {call_type} call)")
    result = await _store(request, engine, IngestRequest([payload], default_type=call_type))
    if result.rejected:
        error = result.rejected[0].error
        raise ApiError(400, "invalid_call", error, [{"index": 0, "error": error}])
    return _answer(result)


def _short(path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """analytics.js 2.0 posts to short routes (``/v1/i``, ``/v1/t``, ...): the same route under a second name."""
    return router.post(path, response_model=IngestResponse, include_in_schema=False)


@_short("/i")
@router.post("/identify", response_model=IngestResponse, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(IDENTIFY), summary="Identify a user and merge traits")
async def identify(request: Request, engine: Engine = Depends(_engine)) -> OrjsonResponse:
    return await _single(request, engine, "identify")


@_short("/t")
@router.post("/track", response_model=IngestResponse, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(TRACK), summary="Record an event")
async def track(request: Request, engine: Engine = Depends(_engine)) -> OrjsonResponse:
    return await _single(request, engine, "track")


@_short("/p")
@router.post("/page", response_model=IngestResponse, responses=ERROR_RESPONSES,
             include_in_schema=False)
async def page(request: Request, engine: Engine = Depends(_engine)) -> OrjsonResponse:
    return await _single(request, engine, "page")


@_short("/s")
@router.post("/screen", response_model=IngestResponse, include_in_schema=False)
async def screen(request: Request, engine: Engine = Depends(_engine)) -> OrjsonResponse:
    return await _single(request, engine, "screen")


@_short("/a")
@router.post("/alias", response_model=IngestResponse, include_in_schema=False)
async def alias(request: Request, engine: Engine = Depends(_engine)) -> OrjsonResponse:
    return await _single(request, engine, "alias")


@_short("/g")
@router.post("/group", response_model=IngestResponse, include_in_schema=False)
async def group(request: Request, engine: Engine = Depends(_engine)) -> OrjsonResponse:
    return await _single(request, engine, "group")


@_short("/b")
@router.post("/batch", response_model=IngestResponse, responses=ERROR_RESPONSES,
             openapi_extra=body_doc(BATCH), summary="Record up to 1,000 calls at once")
async def batch(request: Request, engine: Engine = Depends(_engine)) -> OrjsonResponse:
    payload = await read_json_once(request, max_bytes=engine.settings.max_body_bytes)
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise ApiError(400, "invalid_body", 'the body must be {"batch": [call, ...]}')
    items = payload["batch"]
    limit = engine.settings.max_batch_items
    if len(items) > limit:
        raise ApiError(413, "batch_too_large", f"a batch holds at most {limit} calls; this one has {len(items)}")
    return _answer(await _store(request, engine, IngestRequest(items, batch_sent_at=payload.get("sentAt"))))

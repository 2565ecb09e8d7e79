"""Managing without YAML (CONTRACT.md 11): one segment, flow or template at a time, validated by the same rules as
the config file, kept as versions with who changed what and when; the flows with their steps and live counts."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request

from growthengine.api.auth import KeyGuard
from growthengine.api.body import read_json
from growthengine.api.deps import client_address, get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.schemas import ERROR_RESPONSES, ConfigChange, ConfigHistory, FlowList, SegmentPreviewView
from growthengine.api.wire_schemas import body_doc
from growthengine.clock import to_us
from growthengine.config.errors import ConfigError
from growthengine.config.versions import history_view, item, load_merged
from growthengine.engine import ConfigConflict, Engine
from growthengine.flows.describe import describe_step, describe_trigger
from growthengine.segments.draft_preview import preview_segment
from growthengine.storage.config_store import ConfigKind

router = APIRouter(prefix="/v1", tags=["config"], dependencies=[Depends(require_admin)])

MAX_ITEM_BYTES = 256 * 1024
KEY_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
_KINDS: dict[str, ConfigKind] = {"segments": "segment", "flows": "flow", "templates": "template"}
_ITEM_BODY = body_doc({"type": "object", "description": "The item in exactly the shape of its YAML, as JSON"})


def _key(description: str) -> Any:
    return Path(..., min_length=1, max_length=100, pattern=KEY_PATTERN, description=description)


def changed_by(request: Request) -> str:
    """Who makes a change: the admin key's name (never the key itself)."""
    guard: KeyGuard = request.app.state.guard
    return guard.check(request.headers.get("authorization"), client_address(request)).name


def _get(engine: Engine, kind: ConfigKind, key: str) -> dict[str, Any]:
    found = item(engine.config, kind, key)
    if found is None:
        raise ApiError(404, "not_found", f"no {kind} {key!r}")
    return dict(found) if isinstance(found, dict) else {"value": found}


def _refused(exc: ConfigError) -> ApiError:
    details = [{"path": issue.path, "message": issue.message} for issue in exc.issues]
    return ApiError(422, "invalid_config", f"the change was refused: {len(details)} problem(s); "
                    + "; ".join(f"{d['path']}: {d['message']}" for d in details[:3]), details)


async def _put(request: Request, engine: Engine, kind: ConfigKind, key: str) -> dict[str, Any]:
    body = await read_json(request, max_bytes=MAX_ITEM_BYTES)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", f"the body must be a JSON object: the {kind} in its YAML shape")
    try:
        version = engine.change_config(kind, key, body, changed_by(request))
    except ConfigError as exc:
        raise _refused(exc) from None
    except ConfigConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return history_view(version)


def _delete(request: Request, engine: Engine, kind: ConfigKind, key: str) -> dict[str, Any]:
    _get(engine, kind, key)
    try:
        version = engine.change_config(kind, key, None, changed_by(request))
    except ConfigError as exc:
        raise _refused(exc) from None
    except ConfigConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return history_view(version)


def _routes(section: str) -> None:
    kind = _KINDS[section]
    path = f"/config/{section}/{{key}}"

    @router.get(path, response_model=dict[str, Any], responses=ERROR_RESPONSES, name=f"get_{kind}")
    async def get_item(key: str = _key(f"the {kind}'s key"), engine: Engine = Depends(get_engine)) -> dict[str, Any]:
        return _get(engine, kind, key)

    @router.put(path, response_model=ConfigChange, responses=ERROR_RESPONSES, openapi_extra=_ITEM_BODY,
                name=f"put_{kind}")
    async def put_item(request: Request, key: str = _key(f"the {kind}'s key"),
                       engine: Engine = Depends(get_engine)) -> dict[str, Any]:
        return await _put(request, engine, kind, key)

    @router.delete(path, response_model=ConfigChange, responses=ERROR_RESPONSES, name=f"delete_{kind}")
    async def delete_item(request: Request, key: str = _key(f"the {kind}'s key"),
                          engine: Engine = Depends(get_engine)) -> dict[str, Any]:
        return _delete(request, engine, kind, key)


for _section in _KINDS:
    _routes(_section)


@router.get("/config/history", response_model=ConfigHistory, responses=ERROR_RESPONSES)
async def config_history(
    kind: ConfigKind | None = Query(None, description="only segments, flows or templates"),
    key: str | None = Query(None, max_length=100, description="only this item"),
    before: int | None = Query(None, ge=1, le=2**62, description="the next of the page before"),
    limit: int = Query(100, ge=1, le=1000),
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    """Every change, newest first: what, when, by which key, before and after."""
    changes = engine.config_history(kind=kind, key=key or None, before_id=before, limit=limit + 1)
    more = len(changes) > limit
    changes = changes[:limit]
    return {"changes": [history_view(c) for c in changes], "next": changes[-1].id if more and changes else None}


@router.get("/flows", response_model=FlowList, responses=ERROR_RESPONSES)
async def list_flows(engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """Every enabled flow: its trigger, its steps with the runs waiting at each and their messages by status
    (sent, suppressed with the reason in /v1/messages, ...), and its runs by status."""
    flows = []
    for key, flow in engine.flows.flows.items():
        counts = engine.flow_counts(key)
        runs: Counter[str] = Counter()
        waiting: Counter[str] = Counter()
        for (status, cursor), n in counts.items():
            runs[status] += n
            if status == "active":
                waiting[cursor.split(".")[0]] += n
        with engine.store.read() as tx:
            sent = tx.messages.step_counts(key)
        by_step: dict[str, dict[str, int]] = {}
        for (step_name, status), n in sent.items():
            by_step.setdefault(step_name, {})[status] = n
        steps = [{"name": step.name, "does": describe_step(step), "waiting": waiting.get(str(index), 0),
                  "messages": by_step.get(step.name, {})} for index, step in enumerate(flow.steps)]
        flows.append({"key": key, "name": flow.name, "description": flow.description, "version": flow.version,
                      "trigger": describe_trigger(flow), "steps": steps, "runs": dict(runs)})
    return {"flows": flows}


@router.post("/config/segments/{key}/preview", response_model=SegmentPreviewView, responses=ERROR_RESPONSES,
             openapi_extra=body_doc({"type": "object", "description": "a draft of the segment in its YAML shape, "
                                     "or {} for the saved one"}))
async def preview_segment_route(request: Request, key: str = _key("the segment's key"),
                                engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    """The draft (or saved) segment evaluated on stored history, saving nothing: its size and a sample of members
    with the reason each is in. Exact on small stores; on larger ones on the first users (``sampled`` of
    ``users``), the size scaled to all; within about 2 s."""
    body = await read_json(request, max_bytes=MAX_ITEM_BYTES)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object: a draft segment, or {}")
    if body:
        try:
            with engine.store.read() as tx:
                config = load_merged(tx.conn, engine.settings.config_file, changes=[("segment", key, body)])
        except ConfigError as exc:
            raise _refused(exc) from None
        segments = config.segments
    else:
        segments = engine.segments.segments
        if key not in segments:
            raise ApiError(404, "not_found", f"no segment {key!r}")
    with engine.store.read() as tx:
        preview = preview_segment(segments, key, tx, engine.clock, to_us(engine.clock.now()),
                                  engine.settings.business_timezone)
    return {"size": preview.size, "sample": preview.sample, "exact": preview.exact, "sampled": preview.sampled,
            "users": preview.users}

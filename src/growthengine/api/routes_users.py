"""Reading profiles, a user's data export and erasure (CONTRACT.md 3.2, 10)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path

from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.schemas import ERROR_RESPONSES, UserErased, UserExport, UserView
from growthengine.api.user_export import export_user
from growthengine.api.wire_schemas import NO_NUL
from growthengine.engine import Engine

router = APIRouter(prefix="/v1", tags=["users"], dependencies=[Depends(require_admin)])


@router.get("/users/{userId}", response_model=UserView, responses=ERROR_RESPONSES)
async def get_user(
    user_id: str = Path(..., alias="userId", max_length=300, pattern=NO_NUL), engine: Engine = Depends(get_engine)
) -> dict[str, Any]:
    view = engine.user_view(user_id)
    if view is None:
        raise ApiError(404, "not_found", f"no user {user_id!r}")
    return view


@router.get("/users/{userId}/export", response_model=UserExport, responses=ERROR_RESPONSES,
            summary="Everything held about a user (PDPA data access)")
def export(user_id: str = Path(..., alias="userId", max_length=300, pattern=NO_NUL),
           engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    # A plain ``def``: a long export reads in a worker thread, never on the event loop.
    with engine.store.transaction() as tx:
        found = export_user(tx, user_id)
    if found is None:
        raise ApiError(404, "not_found", f"no user {user_id!r}")
    return found


@router.delete("/users/{userId}", status_code=202, response_model=UserErased, responses=ERROR_RESPONSES,
               summary="Erase a user (PDPA right to erasure)",
               description="The profile, identity links and events are deleted before the answer (GET /v1/users/{id} "
                           "is 404 from then on); segment state, memberships, runs, inbox, consent history and "
                           "models are cleared by the pipeline (before the answer under the manual clock); messages "
                           "stay counted under a one-way token, without content; ads audiences get a removal.")
def erase(user_id: str = Path(..., alias="userId", max_length=300, pattern=NO_NUL),
          engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    # A plain ``def``: the erasure (and, under the manual clock, the work it causes) runs in a worker thread.
    receipt = engine.erase_user(user_id, "api")
    if receipt is None:
        raise ApiError(404, "not_found", f"no user {user_id!r}")
    return {"userId": receipt.user_id, "erasureToken": receipt.token, "eventsDeleted": receipt.events_deleted,
            "audienceRemovals": receipt.audience_removals}

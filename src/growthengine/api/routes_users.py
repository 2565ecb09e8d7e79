"""Reading profiles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path

from growthengine.api.deps import get_engine, require_admin
from growthengine.api.errors import ApiError
from growthengine.api.schemas import ERROR_RESPONSES, UserView
from growthengine.engine import Engine

router = APIRouter(prefix="/v1", tags=["users"], dependencies=[Depends(require_admin)])


@router.get("/users/{userId}", response_model=UserView, responses=ERROR_RESPONSES)
async def get_user(
    user_id: str = Path(..., alias="userId", max_length=300), engine: Engine = Depends(get_engine)
) -> dict[str, Any]:
    if "\x00" in user_id:  # no stored id holds one, and PostgreSQL refuses it in a query
        raise ApiError(400, "invalid_request", "userId must not contain the NUL character (%00)")
    view = engine.user_view(user_id)
    if view is None:
        raise ApiError(404, "not_found", f"no user {user_id!r}")
    return view

"""The in-app inbox (CONTRACT.md 3.3): the app reads its user's messages with the user's own token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Path

from growthengine.api.deps import get_engine
from growthengine.api.errors import ApiError
from growthengine.api.routes_messages import message_json
from growthengine.api.schemas import ERROR_RESPONSES, InboxView, MessageView
from growthengine.api.user_tokens import HEADER, require_user_or_admin
from growthengine.api.wire_schemas import NO_NUL
from growthengine.engine import Engine

router = APIRouter(prefix="/v1", tags=["inbox"], dependencies=[Depends(require_user_or_admin)])

_HEADER_DOC = ("The user's own token (hex HMAC-SHA256 of the user id under GROWTH_USER_TOKEN_SECRET), instead of the "
              "admin key")


@router.get("/users/{userId}/inbox", response_model=InboxView, responses=ERROR_RESPONSES)
async def inbox(user_id: str = Path(..., alias="userId", max_length=300, pattern=NO_NUL),
                _token: str | None = Header(None, alias=HEADER, description=_HEADER_DOC),
                engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    found = engine.inbox(user_id)
    if found is None:
        raise ApiError(404, "not_found", f"no user {user_id!r}")
    return {"messages": [message_json(m) for m in found]}


@router.post("/users/{userId}/inbox/{messageId}/read", response_model=MessageView, responses=ERROR_RESPONSES)
async def mark_read(user_id: str = Path(..., alias="userId", max_length=300, pattern=NO_NUL),
                    message_id: str = Path(..., alias="messageId", max_length=100),
                    _token: str | None = Header(None, alias=HEADER, description=_HEADER_DOC),
                    engine: Engine = Depends(get_engine)) -> dict[str, Any]:
    message = engine.mark_read(user_id, message_id)
    if message is None:
        raise ApiError(404, "not_found", f"no in-app message {message_id!r} for user {user_id!r}")
    return message_json(message)

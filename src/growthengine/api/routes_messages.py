"""Messages: the send ledger (CONTRACT.md 3.2)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from growthengine.api.deps import get_engine, require_admin
from growthengine.api.schemas import ERROR_RESPONSES, MessagesPage
from growthengine.api.wire_schemas import NO_NUL
from growthengine.clock import from_us
from growthengine.domain.messages import Message
from growthengine.engine import Engine
from growthengine.timefmt import format_instant

router = APIRouter(prefix="/v1", tags=["messages"], dependencies=[Depends(require_admin)])

ChannelName = Literal["push", "email", "sms", "in_app", "ads"]
StatusName = Literal["scheduled", "sent", "delivered", "opened", "clicked", "suppressed", "failed", "cancelled"]


def message_json(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": message.id, "userId": message.user_id, "flow": message.flow, "step": message.step,
        "channel": message.channel, "kind": message.kind, "status": message.status,
        "scheduledAt": format_instant(from_us(message.scheduled_us)), "body": message.body,
    }
    optional = {
        "reason": message.reason,
        "sentAt": format_instant(from_us(message.sent_us)) if message.sent_us is not None else None,
        "title": message.title, "subject": message.subject, "variant": message.variant, "coupon": message.coupon,
        "imageUrl": message.image_url,
        "expiresAt": format_instant(from_us(message.expires_us)) if message.expires_us is not None else None,
        "why": message.data.get("gate"),
        "urgency": message.data.get("urgency"),
        "broadcast": message.data.get("broadcast"),
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


@router.get("/messages", response_model=MessagesPage, responses=ERROR_RESPONSES)
async def list_messages(
    user_id: str | None = Query(None, alias="userId", max_length=300, pattern=NO_NUL),
    flow: str | None = Query(None, max_length=100, pattern=NO_NUL),
    channel: ChannelName | None = Query(None),
    status: StatusName | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, pattern="^[0-9]{0,18}$", description="next from the previous page"),
    engine: Engine = Depends(get_engine),
) -> dict[str, Any]:
    after = int(cursor) if cursor else None
    found = engine.messages(user_id=user_id, flow=flow, channel=channel, status=status, after_seq=after,
                            limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    return {"messages": [message_json(m) for m in found],
            "next": str(found[-1].seq) if more and found else None}

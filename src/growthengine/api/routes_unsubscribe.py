"""The one-click unsubscribe link of marketing email (RFC 8058). The signed token is the only credential.

GET shows a confirmation page (link scanners follow GETs, so a GET never unsubscribes); POST unsubscribes at once,
which is what mail clients do with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse

from growthengine.api.deps import get_engine
from growthengine.api.errors import ApiError
from growthengine.consent.unsubscribe import BadToken, Unsubscribe
from growthengine.engine import Engine

router = APIRouter(tags=["unsubscribe"])

_CHANNEL_TH = {"email": "อีเมล", "push": "การแจ้งเตือน", "sms": "SMS", "in_app": "ข้อความในแอป", "ads": "โฆษณา"}


def _read(engine: Engine, token: str) -> Unsubscribe:
    links = engine.flows.runner.links
    if links is None:
        raise ApiError(404, "not_found", "unsubscribe links are not enabled")
    try:
        return links.read(token)
    except BadToken as exc:
        raise ApiError(400, "invalid_link", str(exc)) from None


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='th'><head><meta charset='utf-8'><meta name='viewport' "
        f"content='width=device-width'><title>{title}</title></head><body style='font-family:sans-serif;"
        f"max-width:32rem;margin:3rem auto;line-height:1.6'>{body}</body></html>"
    )


@router.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
async def confirm(token: str = Path(..., max_length=2000), engine: Engine = Depends(get_engine)) -> HTMLResponse:
    request = _read(engine, token)
    channel_th = _CHANNEL_TH.get(request.channel, request.channel)
    safe = html.escape(token, quote=True)
    return _page("ยกเลิกการรับข่าวสาร / Unsubscribe",
                 f"<h1>ยกเลิกการรับ{channel_th}จาก JaiKod?</h1>"
                 f"<p>Unsubscribe from JaiKod marketing by {html.escape(request.channel)}?</p>"
                 f"<form method='post' action='/u/{safe}'><button type='submit' style='padding:.6rem 1.2rem'>"
                 f"ยืนยัน / Confirm</button></form>")


@router.post("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
async def unsubscribe(token: str = Path(..., max_length=2000), engine: Engine = Depends(get_engine)) -> HTMLResponse:
    request = _read(engine, token)
    if not engine.can_unsubscribe(request.user_id, request.message_id):
        # An erased user's old link: nobody is left to unsubscribe, and nothing of them may be recreated.
        return _done()
    engine.ingest([{
        "type": "track", "userId": request.user_id, "event": "unsubscribed",
        "messageId": f"unsub:{request.message_id}:{request.channel}",
        "properties": {"channel": request.channel, "source": "one_click_link", "message_id": request.message_id},
    }])
    return _done()


def _done() -> HTMLResponse:
    return _page("ยกเลิกแล้ว / Unsubscribed",
                 "<h1>ยกเลิกการรับข่าวสารเรียบร้อยแล้ว</h1><p>You have been unsubscribed. "
                 "You will receive no more marketing on this channel.</p>")

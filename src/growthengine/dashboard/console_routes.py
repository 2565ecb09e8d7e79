"""The marketer's console on the dashboard (issue 15): the editors (``editor_routes``), broadcasts with their
calendar, the user page reached by search, and the CSV exports. Every action calls what the config API calls."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from growthengine.clock import to_us
from growthengine.dashboard import broadcast_calendar, exports, user_page
from growthengine.dashboard.drafts import DASHBOARD_AUTHOR
from growthengine.dashboard.editor_routes import add_editor_routes
from growthengine.dashboard.kit import Kit, forbidden, form_allowed, key_or_none, read_form, text, to_login
from growthengine.domain.messages import STATUSES
from growthengine.engine import Engine
from growthengine.flows.broadcasts import BEST_TIME, create
from growthengine.flows.one_off import OneOffRefused

CSV = "text/csv; charset=utf-8"
CHANNELS = ("push", "email", "sms", "in_app", "ads")


def _csv(body: object, filename: str) -> Response:
    return StreamingResponse(body, media_type=CSV,  # type: ignore[arg-type]
                             headers={"Content-Disposition": f"attachment; filename=\"{filename}\"",
                                      "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def _filter(request: Request, name: str, allowed: tuple[str, ...] | None = None) -> str | None:
    value = request.query_params.get(name, "").strip()[:200]
    if not value or "\x00" in value or (allowed is not None and value not in allowed):
        return None
    return value


def add_console_routes(router: APIRouter, engine: Engine, kit: Kit) -> None:
    add_editor_routes(router, engine, kit)

    def follow() -> None:
        engine.follow_config_soon(apply=engine.manual)

    # -- broadcasts ----------------------------------------------------------------------------------------

    def broadcasts_page(request: Request, status: int = 200, **extra: object) -> Response:
        data = broadcast_calendar.page(engine, month=request.query_params.get("month"), lang=kit.language(request))
        data.update(extra)
        data.setdefault("created", request.query_params.get("created", "")[:40])
        return kit.render(request, "broadcasts.html", "broadcasts", status=status, data=data)

    @router.get("/dashboard/broadcasts")
    async def broadcasts(request: Request) -> Response:
        if not kit.signed_in(request):
            return to_login(request)
        follow()
        return broadcasts_page(request)

    @router.post("/dashboard/broadcasts")
    async def create_broadcast(request: Request) -> Response:
        """``POST /v1/broadcasts`` from the form: the time is read in the business time zone."""
        if not kit.signed_in(request):
            return to_login(request)
        form = await read_form(request)
        if form is None or not form_allowed(request, form):
            return forbidden(kit, request, "broadcasts")
        follow()
        t = kit.words(request)
        name, channel = text(form, "name"), text(form, "channel", 16)
        segment, template = key_or_none(form.get("segment")), key_or_none(form.get("template"))
        problems = []
        if not name:
            problems.append(t("broadcast_needs_name"))
        if segment is None or segment not in engine.segments.segments:
            problems.append(t("broadcast_needs_segment"))
        if template is None or channel not in broadcast_calendar.CHANNELS:
            problems.append(t("broadcast_needs_template"))
        tz = ZoneInfo(engine.settings.business_timezone)
        at_us: int | None = None
        at = BEST_TIME
        if form.get("when") != BEST_TIME:
            try:
                local = dt.datetime.fromisoformat(text(form, "at", 32)).replace(tzinfo=tz)
            except ValueError:
                problems.append(t("broadcast_needs_time"))
            else:
                at = local.isoformat()
                at_us = to_us(local)
        if problems or segment is None or template is None:
            return broadcasts_page(request, 422, problems=problems, form=form)
        now_us = to_us(engine.clock.now())
        try:
            with engine.store.transaction() as tx:
                made = create(tx, engine.flows.runner, name=name, segment=segment, template=template,
                              channel=channel, at=at, at_us=max(at_us, now_us) if at_us is not None else None,
                              created_by=DASHBOARD_AUTHOR, now_us=now_us)
        except OneOffRefused as exc:
            return broadcasts_page(request, 422, problems=[str(exc)], form=form)
        engine.after_ingest()
        month = (dt.datetime.fromtimestamp((at_us or now_us) / 1e6, tz)).strftime("%Y-%m")
        return RedirectResponse(f"/dashboard/broadcasts?{urlencode({'month': month, 'created': made.id})}",
                                status_code=303)

    # -- users ---------------------------------------------------------------------------------------------

    @router.get("/dashboard/users")
    async def users(request: Request) -> Response:
        if not kit.signed_in(request):
            return to_login(request)
        query = request.query_params.get("q", "").strip()[:300].replace("\x00", "")
        found = user_page.search(engine, query)
        if len(found) == 1 and (query == found[0]["user_id"] or query.lower() == str(found[0]["email"]).lower()):
            return RedirectResponse(f"/dashboard/users/{quote(found[0]['user_id'], safe='')}", status_code=303)
        return kit.render(request, "users.html", "users", data={"q": query, "found": found})

    @router.get("/dashboard/users/{user_id:path}")
    async def user(request: Request, user_id: str) -> Response:
        if not kit.signed_in(request):
            return to_login(request)
        follow()
        data = user_page.user(engine, user_id[:300], kit.language(request)) if "\x00" not in user_id else None
        if data is None:
            return kit.render(request, "error.html", "users", status=404,
                              message=kit.words(request)("no_such_user"))
        return kit.render(request, "user.html", "users", data=data)

    # -- CSV exports ---------------------------------------------------------------------------------------

    @router.get("/dashboard/segments/{key}/members.csv")
    async def members_csv(request: Request, key: str) -> Response:
        if not kit.signed_in(request):
            return to_login(request)
        follow()
        if key_or_none(key) is None or key not in engine.segments.segments:
            return Response("no such segment\n", status_code=404, media_type="text/plain; charset=utf-8")
        return _csv(exports.segment_members(engine, key), f"segment-{key}.csv")

    @router.get("/dashboard/messages.csv")
    async def messages_csv(request: Request) -> Response:
        if not kit.signed_in(request):
            return to_login(request)
        body = exports.messages(engine, user_id=_filter(request, "user"), flow=_filter(request, "flow"),
                                channel=_filter(request, "channel", CHANNELS),
                                status=_filter(request, "status", STATUSES))
        return _csv(body, "messages.csv")

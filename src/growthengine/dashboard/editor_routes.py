"""The console's editors: a segment with its live preview, a flow (published from YAML) with its diagram, a
template with its preview for a chosen user in Thai and English and a test send. Each action is the config API's
(``drafts``); forms carry the session's CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from growthengine.clock import to_us
from growthengine.config.versions import history_view
from growthengine.content.formatting import format_datetime
from growthengine.dashboard import drafts
from growthengine.dashboard.flow_diagram import diagram
from growthengine.dashboard.flow_path_view import path_for_form
from growthengine.dashboard.kit import Kit, forbidden, form_allowed, key_or_none, read_form, text, to_login
from growthengine.engine import Engine
from growthengine.flows.one_off import OneOffRefused, send_test
from growthengine.storage.config_store import ConfigKind
from growthengine.timefmt import parse_instant

NEW_SEGMENT = """name: Camera fans
description: Viewed cameras at least twice in 30 days
refresh: realtime
event: item_viewed
where: {category: cameras}
count: {gte: 2}
within: 30d
"""
NEW_FLOW = """name: Camera fans welcome
description: A push when someone joins the segment
trigger: {segment_entered: camera_fans}
steps:
  - name: welcome_push
    send: {channel: push, kind: marketing, template: camera_fans_push}
"""
NEW_TEMPLATE = """channel: push
description: A push for camera fans
th:
  title: "กล้องที่คุณชอบรออยู่"
  body: "สวัสดีครับ มีกล้องใหม่เข้ามาแล้ว ดูเลย"
en:
  title: "Cameras you like are waiting"
  body: "Hello! New cameras just came in, take a look"
"""
_NEW = {"segment": NEW_SEGMENT, "flow": NEW_FLOW, "template": NEW_TEMPLATE}
_PAGE = {"segment": "segments", "flow": "flows", "template": "templates"}
TEST_CHANNELS = ("push", "email", "sms", "in_app")


def _history(engine: Engine, kind: ConfigKind, key: str | None, lang: str) -> list[dict[str, Any]]:
    if key is None:
        return []
    out = []
    for version in engine.config_history(kind=kind, key=key, limit=10):
        row = history_view(version)
        row["when"] = format_datetime(parse_instant(row["changedAt"], field="changedAt"), lang,
                                      engine.settings.business_timezone)
        out.append(row)
    return out


def _editor(engine: Engine, kind: ConfigKind, key: str | None, body_text: str | None, lang: str,
            **extra: Any) -> dict[str, Any]:
    saved = drafts.saved_yaml(engine, kind, key)
    registry = engine.flows.runner.templates
    if kind == "template":
        extra.setdefault("channel", str(registry.get(key).channel) if key and key in registry else "push")
    return {"kind": kind, "key": key or "", "text": body_text if body_text is not None else (saved or _NEW[kind]),
            "exists": saved is not None, "history": _history(engine, kind, key, lang), "problems": [],
            "timezone": engine.settings.business_timezone, **extra}


def _values(raw: str) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    if not raw.strip():
        return None, []
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, [{"path": "values", "message": f"not JSON: {exc}"}]
    if not isinstance(values, dict):
        return None, [{"path": "values", "message": "a JSON object"}]
    return values, []


def add_editor_routes(router: APIRouter, engine: Engine, kit: Kit) -> None:
    def follow() -> None:
        engine.follow_config_soon(apply=engine.manual)

    async def posted(request: Request, kind: ConfigKind) -> tuple[dict[str, str] | None, Response | None]:
        if not kit.signed_in(request):
            return None, to_login(request)
        form = await read_form(request)
        if form is None:
            return None, kit.render(request, "error.html", _PAGE[kind], status=413,
                                    message=kit.words(request)("too_big"))
        if not form_allowed(request, form):
            return None, forbidden(kit, request, _PAGE[kind])
        follow()
        return form, None

    def editor_page(request: Request, kind: ConfigKind, data: dict[str, Any], status: int = 200) -> Response:
        return kit.render(request, f"{kind}_edit.html", _PAGE[kind], status=status, data=data)

    # -- segments ------------------------------------------------------------------------------------------

    @router.get("/dashboard/segments/edit")
    async def segment_editor(request: Request) -> Response:
        if not kit.signed_in(request):
            return to_login(request)
        follow()
        key = key_or_none(request.query_params.get("key"))
        data = _editor(engine, "segment", key, None, kit.language(request),
                       saved=request.query_params.get("saved") == "1")
        return editor_page(request, "segment", data)

    def segment_preview(key: str, form: dict[str, str]) -> dict[str, Any]:
        body, problems = drafts.parse_body(form.get("body", ""))
        if problems:
            return {"problems": problems}
        preview, problems = drafts.preview_draft_segment(engine, key, body)
        return {"problems": problems, "preview": preview}

    @router.post("/dashboard/segments/edit")
    async def segment_action(request: Request) -> Response:
        form, refused = await posted(request, "segment")
        if form is None:
            return refused or to_login(request)
        lang = kit.language(request)
        key = key_or_none(form.get("key"))
        data = _editor(engine, "segment", key, form.get("body", ""), lang)
        if key is None:
            data["problems"] = [{"path": "key", "message": kit.words(request)("bad_key")}]
            return editor_page(request, "segment", data, 422)
        if form.get("action") == "save":
            body, problems = drafts.parse_body(form.get("body", ""))
            outcome = drafts.save(engine, "segment", key, body) if body is not None else None
            if outcome is not None and not outcome.problems:
                return RedirectResponse(f"/dashboard/segments/edit?key={key}&saved=1", status_code=303)
            data["problems"] = problems or (outcome.problems if outcome else [])
            return editor_page(request, "segment", data, 422)
        data.update(segment_preview(key, form))
        return editor_page(request, "segment", data, 422 if data["problems"] else 200)

    async def preview_fragment(request: Request, kind: ConfigKind,
                               preview: Callable[[str, dict[str, str]], dict[str, Any]], page: str) -> Response:
        """A draft's preview alone (the editor's live preview), for a form posted with its session's token."""
        form, refused = await posted(request, kind)
        if form is None:
            return refused or to_login(request)
        key = key_or_none(form.get("key"))
        data = preview(key, form) if key is not None else {
            "problems": [{"path": "key", "message": kit.words(request)("bad_key")}]}
        return kit.render(request, f"{kind}_preview.html", page, data=data)

    @router.post("/dashboard/segments/preview")
    async def segment_preview_fragment(request: Request) -> Response:
        return await preview_fragment(request, "segment", segment_preview, "segments")

    # -- flows -------------------------------------------------------------------------------------------------

    @router.get("/dashboard/flows/edit")
    async def flow_editor(request: Request) -> Response:
        if not kit.signed_in(request):
            return to_login(request)
        follow()
        key = key_or_none(request.query_params.get("key"))
        flow = engine.config.flows.get(key) if key else None
        data = _editor(engine, "flow", key, None, kit.language(request),
                       saved=request.query_params.get("saved") == "1",
                       diagram=diagram(engine, key, flow) if key and flow else None,
                       user=request.query_params.get("user", "")[:300], trigger="")
        return editor_page(request, "flow", data)

    @router.post("/dashboard/flows/edit")
    async def flow_action(request: Request) -> Response:
        form, refused = await posted(request, "flow")
        if form is None:
            return refused or to_login(request)
        key = key_or_none(form.get("key"))
        data = _editor(engine, "flow", key, form.get("body", ""), kit.language(request), diagram=None,
                       user=text(form, "user", 300), trigger=text(form, "trigger", 4000))
        if key is None:
            data["problems"] = [{"path": "key", "message": kit.words(request)("bad_key")}]
            return editor_page(request, "flow", data, 422)
        body, problems = drafts.parse_body(form.get("body", ""))
        if body is not None and form.get("action") == "path":  # what would happen for the user (saves nothing)
            if not data["user"]:
                data["problems"] = [{"path": "user", "message": kit.words(request)("enter_user")}]
                return editor_page(request, "flow", data, 422)
            data.update(path_for_form(engine, key, body, data["user"], data["trigger"]))
            return editor_page(request, "flow", data, 422 if data["problems"] else 200)
        if body is not None and form.get("action") == "check":
            draft, problems = drafts.check_flow(engine, key, body)
            data.update(problems=problems, checked=not problems,
                        diagram=diagram(engine, key, draft) if draft is not None else None)
            return editor_page(request, "flow", data, 422 if problems else 200)
        outcome = drafts.save(engine, "flow", key, body) if body is not None else None
        if outcome is not None and not outcome.problems:
            return RedirectResponse(f"/dashboard/flows/edit?key={key}&saved=1", status_code=303)
        data["problems"] = problems or (outcome.problems if outcome else [])
        return editor_page(request, "flow", data, 422)

    # -- templates -----------------------------------------------------------------------------------------

    @router.get("/dashboard/templates")
    async def templates_list(request: Request) -> Response:
        if not kit.signed_in(request):
            return to_login(request)
        follow()
        registry = engine.flows.runner.templates
        rows = []
        for key in registry.keys():
            template = registry.get(key)
            rows.append({"key": key, "channel": str(template.channel), "description": template.description,
                         "languages": ", ".join(template.languages), "required": sorted(template.required_variables)})
        return kit.render(request, "templates.html", "templates", data={"templates": rows})

    def template_preview(key: str, form: dict[str, str]) -> dict[str, Any]:
        user = text(form, "user", 300)
        body, problems = drafts.parse_body(form.get("body", ""))
        values, value_problems = _values(form.get("values", ""))
        problems += value_problems
        if problems or not user:
            return {"problems": problems, "user": user}
        preview = drafts.preview_template(engine, key, body, user, values)
        return {"problems": preview.problems, "template_preview": preview, "user": user}

    @router.get("/dashboard/templates/edit")
    async def template_editor(request: Request) -> Response:
        if not kit.signed_in(request):
            return to_login(request)
        follow()
        key = key_or_none(request.query_params.get("key"))
        data = _editor(engine, "template", key, None, kit.language(request),
                       saved=request.query_params.get("saved") == "1",
                       user=request.query_params.get("user", "")[:300], values="", channels=TEST_CHANNELS)
        return editor_page(request, "template", data)

    @router.post("/dashboard/templates/edit")
    async def template_action(request: Request) -> Response:
        form, refused = await posted(request, "template")
        if form is None:
            return refused or to_login(request)
        key = key_or_none(form.get("key"))
        action = form.get("action", "preview")
        data = _editor(engine, "template", key, form.get("body", ""), kit.language(request),
                       user=text(form, "user", 300), values=form.get("values", ""), channels=TEST_CHANNELS)
        if key is None:
            data["problems"] = [{"path": "key", "message": kit.words(request)("bad_key")}]
            return editor_page(request, "template", data, 422)
        if action == "save":
            body, problems = drafts.parse_body(form.get("body", ""))
            outcome = drafts.save(engine, "template", key, body) if body is not None else None
            if outcome is not None and not outcome.problems:
                return RedirectResponse(f"/dashboard/templates/edit?key={key}&saved=1&user={data['user']}",
                                        status_code=303)
            data["problems"] = problems or (outcome.problems if outcome else [])
            return editor_page(request, "template", data, 422)
        if action == "test":
            data["test"] = test_send(key, form)
        data.update(template_preview(key, form))
        if action == "test":
            return editor_page(request, "template", data, 200 if "message" in data["test"] else 422)
        return editor_page(request, "template", data, 422 if data["problems"] else 200)

    def test_send(key: str, form: dict[str, str]) -> dict[str, Any]:
        """``POST /v1/messages/test`` with the saved template."""
        user, channel = text(form, "user", 300), text(form, "channel", 16)
        values, problems = _values(form.get("values", ""))
        if problems or not user or channel not in TEST_CHANNELS:
            return {"error": "; ".join(p["message"] for p in problems) or "user and channel"}
        try:
            with engine.store.transaction() as tx:
                message = send_test(tx, engine.flows.runner, key, user, channel, to_us(engine.clock.now()), values)
        except OneOffRefused as exc:
            return {"error": str(exc)}
        engine.after_ingest()
        with engine.store.read() as tx:
            final = tx.messages.get(message.id) or message
        sent = final.status in ("sent", "delivered", "opened", "clicked")
        return {"message": final, "sent": sent, "reason": None if sent else (final.reason or final.status)}

    @router.post("/dashboard/templates/preview")
    async def template_preview_fragment(request: Request) -> Response:
        return await preview_fragment(request, "template", template_preview, "templates")

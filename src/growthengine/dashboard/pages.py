"""The dashboard's routes: sign-in, the six pages, and the static files (plotly.js from the installed package)."""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.resources
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from growthengine.api.auth import KeyRing
from growthengine.clock import Clock, RealClock
from growthengine.dashboard import views
from growthengine.dashboard.console_routes import add_console_routes
from growthengine.dashboard.csrf import csrf_token
from growthengine.dashboard.i18n import pick_language, translator
from growthengine.dashboard.kit import Kit
from growthengine.dashboard.session import COOKIE, LANG_COOKIE, DashboardSessions, LoginThrottle, safe_next
from growthengine.domain.messages import STATUSES
from growthengine.engine import Engine
from growthengine.timefmt import TimeFormatError

HERE = Path(__file__).parent
STATIC = {"style.css": "text/css; charset=utf-8", "charts.js": "text/javascript; charset=utf-8",
          "console.js": "text/javascript; charset=utf-8"}
CHANNELS = ("push", "email", "sms", "in_app", "ads")
PAGES = (("overview", "/"), ("segments", "/dashboard/segments"), ("flows", "/dashboard/flows"),
         ("templates", "/dashboard/templates"), ("broadcasts", "/dashboard/broadcasts"),
         ("messages", "/dashboard/messages"), ("users", "/dashboard/users"),
         ("experiments", "/dashboard/experiments"), ("send_times", "/dashboard/send-times"))
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
                                "frame-ancestors 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _pct(value: Any, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def _num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["json"] = lambda value: orjson.dumps(value).decode()
    return env


class PlotlyBundle:
    """plotly.min.js as shipped inside the installed ``plotly`` package, read once, kept plain and gzipped."""

    def __init__(self) -> None:
        self._plain: bytes | None = None
        self._gzipped: bytes | None = None
        self.version = importlib.metadata.version("plotly")

    def body(self, accept_gzip: bool) -> tuple[bytes, bool]:
        if self._plain is None:
            self._plain = (importlib.resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
            self._gzipped = gzip.compress(self._plain, compresslevel=6)
        if accept_gzip and self._gzipped is not None:
            return self._gzipped, True
        return self._plain, False


def _query(request: Request, name: str, allowed: tuple[str, ...] | None = None) -> str | None:
    value = request.query_params.get(name, "").strip()[:200]
    if not value or "\x00" in value or (allowed is not None and value not in allowed):
        return None
    return value


def build_router(engine: Engine, system_clock: Clock | None = None) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    env = _environment()
    system_clock = system_clock or RealClock()
    sessions = DashboardSessions(engine.store, system_clock)
    throttle = LoginThrottle(system_clock, engine.settings.login_attempts, engine.settings.login_window_s)
    plotly = PlotlyBundle()

    def signed_in(request: Request) -> bool:
        known = getattr(request.state, "signed_in", None)
        if known is None:
            known = request.state.signed_in = sessions.valid(request.cookies.get(COOKIE))
        return bool(known)

    def render(request: Request, template: str, page: str, status: int = 200, **values: Any) -> Response:
        lang = pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
        params = {k: v for k, v in request.query_params.items() if k != "lang"}
        html = env.get_template(template).render(
            t=translator(lang), lang=lang, page=page, pages=PAGES, path=request.url.path,
            other_lang_url=f"{request.url.path}?{urlencode({**params, 'lang': 'en' if lang == 'th' else 'th'})}",
            plotly_version=plotly.version, signed_in=signed_in(request),
            csrf=csrf_token(request.cookies.get(COOKIE)) if signed_in(request) else "", **values,
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        if request.query_params.get("lang") == lang:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="strict")
        return response

    def page(name: str, template: str, load: Callable[[Request], dict[str, Any]]) -> Callable[..., Any]:
        async def handler(request: Request) -> Response:
            if not signed_in(request):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/dashboard/login?{urlencode({'next': target})}", status_code=303)
            try:
                values = load(request)
            except TimeFormatError as exc:
                return render(request, "error.html", name, status=400, message=str(exc))
            return render(request, template, name, data=values)

        return handler

    def dates(request: Request) -> dict[str, str | None]:
        return {"start": _query(request, "from"), "end": _query(request, "to")}

    def language(request: Request) -> str:
        return pick_language(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))

    def words(request: Request) -> Callable[..., str]:
        return translator(language(request))

    router.add_api_route("/", page("overview", "overview.html", lambda r: views.overview(
        engine, flow=_query(r, "flow"), t=words(r), **dates(r))), methods=["GET"])
    router.add_api_route("/dashboard/segments", page("segments", "segments.html", lambda r: views.segments(engine)),
                         methods=["GET"])
    router.add_api_route("/dashboard/flows", page("flows", "flows.html", lambda r: views.flows(
        engine, t=words(r), **dates(r))), methods=["GET"])
    router.add_api_route("/dashboard/messages", page("messages", "messages.html", lambda r: views.messages(
        engine, user_id=_query(r, "user"), flow=_query(r, "flow"), channel=_query(r, "channel", CHANNELS),
        status=_query(r, "status", STATUSES), before=_int(_query(r, "before")))), methods=["GET"])
    router.add_api_route("/dashboard/experiments", page("experiments", "experiments.html",
                                                        lambda r: views.experiments(engine, **dates(r))),
                         methods=["GET"])
    router.add_api_route("/dashboard/send-times", page("send_times", "send_times.html", lambda r: views.send_times(
        engine, flow=_query(r, "flow"), channel=_query(r, "channel", CHANNELS))), methods=["GET"])

    add_console_routes(router, engine, Kit(render=render, signed_in=signed_in, language=language))

    @router.get("/dashboard")
    async def dashboard_root() -> Response:
        return RedirectResponse("/", status_code=303)

    @router.get("/dashboard/login")
    async def login_form(request: Request) -> Response:
        return render(request, "login.html", "login", next=safe_next(request.query_params.get("next")), failed=None)

    @router.post("/dashboard/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        key, target = form.get("key", ""), safe_next(form.get("next"))
        client = request.client.host if request.client else "unknown"
        wait = throttle.retry_after(client)
        if wait is not None:
            response = render(request, "login.html", "login", status=429, next=target, failed="throttled")
            response.headers["Retry-After"] = str(wait)
            return response
        keys: KeyRing = request.app.state.keys
        if not key or keys.role_of(key) != "admin":
            throttle.failed(client)
            return render(request, "login.html", "login", status=401, next=target, failed="key")
        throttle.succeeded(client)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, sessions.open(), httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")  # behind a trusted proxy: X-Forwarded-Proto
        return response

    @router.post("/dashboard/logout")
    async def logout(request: Request) -> Response:
        sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/dashboard/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    @router.post("/dashboard/segments/snapshot")
    async def snapshot(request: Request) -> Response:
        if not signed_in(request):
            return RedirectResponse("/dashboard/login", status_code=303)
        from growthengine.analytics.service import snapshot_segments

        snapshot_segments(engine)
        return RedirectResponse("/dashboard/segments", status_code=303)

    @router.get("/dashboard/static/plotly.min.js")
    async def plotly_js(request: Request) -> Response:
        body, gzipped = plotly.body("gzip" in request.headers.get("accept-encoding", ""))
        headers = {"Cache-Control": "public, max-age=86400", "ETag": f'"plotly-{plotly.version}"',
                   "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)

    @router.get("/dashboard/static/{name}")
    async def static(name: str) -> Response:
        media = STATIC.get(name)
        if media is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response((HERE / "static" / name).read_bytes(), media_type=media,
                        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})

    return router


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and len(value) < 19 else None


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form (no multipart dependency): the first value of each field."""
    body = await request.body()
    if len(body) > 8192:
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items() if v}

"""What the console's routes share with the dashboard's pages: rendering in the visitor's language, the session
check, the CSRF check, and reading a form (a bigger one than the sign-in form: a segment, a flow, a template)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from growthengine.dashboard.csrf import FIELD, HEADER, csrf_ok
from growthengine.dashboard.i18n import translator
from growthengine.dashboard.session import COOKIE

MAX_FORM_BYTES = 256 * 1024
KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
"""The keys of segments, flows and templates, as the config API takes them."""


@dataclass(frozen=True)
class Kit:
    render: Callable[..., Response]
    """``render(request, template, page, status=200, **values)``"""
    signed_in: Callable[[Request], bool]
    language: Callable[[Request], str]

    def words(self, request: Request) -> Callable[..., str]:
        return translator(self.language(request))


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/dashboard/login?{urlencode({'next': target})}", status_code=303)


def forbidden(kit: Kit, request: Request, page: str) -> Response:
    t = kit.words(request)
    return kit.render(request, "error.html", page, status=403, message=t("csrf_failed"))


async def read_form(request: Request) -> dict[str, str] | None:
    """A urlencoded form (the first value of each field); ``None`` when it is too big to be one of ours."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0].replace("\x00", "") for k, v in parsed.items() if v}


def form_allowed(request: Request, form: dict[str, str]) -> bool:
    """The form came from one of our pages in this session (its token, or the header a script sends)."""
    sent = form.get(FIELD) or request.headers.get(HEADER)
    return csrf_ok(request.cookies.get(COOKIE), sent)


def key_or_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if KEY_RE.match(value) else None


def text(form: dict[str, str], name: str, limit: int = 200) -> str:
    return form.get(name, "").strip()[:limit]


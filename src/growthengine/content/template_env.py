"""The Jinja2 environments message templates run in: sandboxed, strict, Thai-first filters.

* Sandboxed (immutable): template authors are marketers, not engineers; ``{{ ''.__class__ }}`` and friends,
  and calls that mutate data (``list.append``), are refused.
* ``StrictUndefined``: a missing variable is an error, never blank text in a customer's message.
  ``{{ x | default('') }}`` and ``{% if x is defined %}`` still work for what is optional.
* Autoescape only for HTML email bodies; push, SMS, in-app and plain-text email are text.

Filters (``language`` is bound per environment, so a template never passes it):

=====================  =====================================================================
``amount|baht``        ``฿12,500`` / ``฿1,234.50``
``amount|number``      ``12,500`` (for Thai price style ``{{ p|number }}.-`` = ``500.-``)
``t|datetime``         ``25 พ.ย. 2569 14:30`` / ``25 Nov 2026, 14:30`` (``t|datetime(tz)`` for a user zone)
``t|date``             ``25 พ.ย. 2569`` / ``25 Nov 2026``
``t|time_left(now)``   ``2 ชม.`` / ``2 hours``, rounded down
``url|http_url``       the URL if it is http(s), else empty (seller-supplied links)
``t is expired(now)``  a test: the instant has passed
=====================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial, wraps
from typing import Any
from urllib.parse import urlsplit

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from growthengine.content.formatting import (
    format_baht,
    format_date,
    format_datetime,
    format_number,
    format_time_left,
    is_expired,
)


def _datetime_filter(language: str, value: object, tz: str | None = None) -> str:
    return format_datetime(value, language, tz)


def _date_filter(language: str, value: object, tz: str | None = None) -> str:
    return format_date(value, language, tz)


def _time_left_filter(language: str, expires_at: object, now: object) -> str:
    return format_time_left(expires_at, now, language)


def _http_url(value: object) -> str:
    """The URL if it is http(s), else empty text: seller-supplied links never become ``javascript:``."""
    if value is None:
        return ""
    text = str(value).strip()
    scheme = urlsplit(text).scheme.lower() if text else ""
    return text if scheme in ("http", "https") else ""


def _strict(func: Callable[..., Any]) -> Callable[..., Any]:
    """Filters get undefined values as objects; make a missing variable fail here as it would anywhere else."""

    @wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, jinja2.Undefined):
                value._fail_with_undefined_error()
        return func(*args, **kwargs)

    return checked


def build_environment(language: str, *, html: bool, partials: Mapping[str, str]) -> jinja2.Environment:
    """A sandboxed, strict environment for one language; ``html`` turns autoescaping on.

    ``partials`` are named sources (macros such as a product card) that templates import with
    ``{% from "cards.html" import product_card %}``.
    """
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=html,
        loader=jinja2.DictLoader(dict(partials)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    filters: dict[str, Any] = {
        "baht": format_baht,
        "number": format_number,
        "datetime": partial(_datetime_filter, language),
        "date": partial(_date_filter, language),
        "time_left": partial(_time_left_filter, language),
        "http_url": _http_url,
    }
    env.filters.update({name: _strict(func) for name, func in filters.items()})
    env.tests["expired"] = _strict(is_expired)
    return env

"""Logging: plain text on a terminal, one JSON object per line with ``GROWTH_LOG_FORMAT=json``.

Every line a request causes carries its request id (a context variable set by the request middleware). No line
carries personal data: the engine logs ids, never addresses or bodies, and as a second line of defence every
message (and traceback) is passed through the providers' :func:`scrub`, which masks email addresses and phone numbers.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import sys
from typing import Any, Literal, TextIO

import orjson

from growthengine.channels.providers.base import scrub

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("growth_request_id", default=None)

LogFormat = Literal["text", "json"]

# Libraries whose INFO lines are chatter for an operator (Alembic says "Context impl SQLiteImpl." on every start).
# uvicorn's start lines are replaced by the engine's own; its errors still show.
_QUIET = ("alembic", "httpx", "httpcore", "multipart", "uvicorn", "uvicorn.error", "uvicorn.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def _message(record: logging.LogRecord, formatter: logging.Formatter) -> tuple[str, str | None]:
    message = scrub(record.getMessage())
    error = None
    if record.exc_info:
        error = scrub(formatter.formatException(record.exc_info))
    elif record.exc_text:
        error = scrub(record.exc_text)
    return message, error


class TextFormatter(logging.Formatter):
    """``2026-01-05 09:00:00,123 INFO    growthengine.api [req=ab12]: message``."""

    def format(self, record: logging.LogRecord) -> str:
        message, error = _message(record, self)
        rid = getattr(record, "request_id", None)
        line = (f"{self.formatTime(record)} {record.levelname:<7} {record.name}"
                f"{f' [req={rid}]' if rid else ''}: {message}")
        return f"{line}\n{error}" if error else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, ``request_id``, ``error``, and
    the fields a caller passes as ``extra={"fields": {...}}`` (the access log's method, route, status, ms)."""

    def format(self, record: logging.LogRecord) -> str:
        message, error = _message(record, self)
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if error:
            entry["error"] = error
        return orjson.dumps(entry, default=str).decode()


def parse_level(level: str | int | None, default: int) -> int:
    if level is None or level == "":
        return default
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"GROWTH_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level!r}")
    return value


def configure_logging(fmt: LogFormat = "text", level: str | int | None = None, *, default_level: int = logging.INFO,
                      stream: TextIO | None = None) -> None:
    """Set the root logger up once for this process (called again, it replaces its own handler)."""
    resolved = parse_level(level, default_level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    handler.set_name("growth")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "growth"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(resolved)
    for name in _QUIET:  # GROWTH_LOG_LEVEL=DEBUG shows them all
        logging.getLogger(name).setLevel(resolved if resolved <= logging.DEBUG else max(resolved, logging.WARNING))
    # uvicorn's own loggers pass their lines up to this handler instead of printing them their way.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True

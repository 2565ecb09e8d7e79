"""Shared helpers for the in-process API tests: the app around a test engine, keys, the error shape."""

from __future__ import annotations

import base64
import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from growthengine.api.app import create_app
from growthengine.api.auth import KeyRing
from growthengine.engine import Engine
from growthengine.storage.schema import events

ADMIN_KEY = "admin-key"
WRITE_KEY = "write-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}


def basic(username: str, password: str = "") -> dict[str, str]:
    """HTTP Basic as Segment and RudderStack SDKs send it: ``base64("<write key>:")``."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@asynccontextmanager
async def api_client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client that talks to the app in-process (no lifespan: the tests run on the manual clock)."""
    app = create_app(engine, KeyRing.from_keys([ADMIN_KEY], [WRITE_KEY]), run_workers=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def gzipped(payload: Any) -> bytes:
    return gzip.compress(orjson.dumps(payload))


def json_headers(auth: dict[str, str], **extra: str) -> dict[str, str]:
    return {**auth, "Content-Type": "application/json", **extra}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code", "message", "details": [...]}}`` with the expected status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def assert_ingest(response: httpx.Response, accepted: int, duplicates: int = 0,
                  rejected: list[int] | None = None, warned: list[str] | None = None) -> list[dict[str, Any]]:
    """A 200 ingestion answer with these counts (and warnings about these dropped traits); returns the rejections."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"accepted", "duplicates", "rejected"} | ({"warnings"} if warned else set()), body
    if warned:
        assert [w["path"] for w in body["warnings"]] == warned, body
        for w in body["warnings"]:
            assert set(w) == {"index", "path", "message"} and w["message"], w
    assert (body["accepted"], body["duplicates"]) == (accepted, duplicates), body
    assert [r["index"] for r in body["rejected"]] == (rejected or []), body
    for r in body["rejected"]:
        assert set(r) == {"index", "error"} and isinstance(r["error"], str) and r["error"]
    return list(body["rejected"])


def stored_rows(engine: Engine, user_id: str | None = None) -> list[dict[str, Any]]:
    """Raw rows of the event log (with ``extra``), oldest first: the stored calls, not the engine's own per-user
    commands for its stages (type ``command``), which share the log."""
    query = sa.select(events).where(events.c.type != "command").order_by(events.c.ts_us, events.c.id)
    if user_id is not None:
        query = query.where(events.c.user_id == user_id)
    with engine.store.transaction() as tx:
        return [dict(row) for row in tx.conn.execute(query).mappings()]


def event_count(engine: Engine) -> int:
    with engine.store.transaction() as tx:
        return tx.events.count()

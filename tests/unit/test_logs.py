"""Logs (CONTRACT.md 9): text or JSON lines, the request id on every line a request causes, no PII anywhere."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from growthengine.api.app import create_app
from growthengine.api.auth import KeyRing
from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.observability.logs import configure_logging, parse_level, request_id
from growthengine.settings import Settings
from tests.unit.api_client import ADMIN, ADMIN_KEY, WRITE, WRITE_KEY

EMAIL = "somchai.jaidee@example.co.th"
PHONE = "+66812345678"
PII = re.compile(r"somchai|jaidee|example\.co\.th|66812345678|081-?234-?5678")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """The root logger writes to this buffer for the test; the set-up before it comes back after."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in ("alembic", "uvicorn")})
    buffer = io.StringIO()
    yield buffer
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_json_lines_carry_the_request_id_and_extra_fields(logs: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=logs)
    log = logging.getLogger("growthengine.test")
    token = request_id.set("req-42")
    try:
        log.info("stored %d calls", 3, extra={"fields": {"route": "/v1/batch", "status": 200}})
    finally:
        request_id.reset(token)
    log.debug("not at INFO")
    log.warning("outside any request")
    lines = [orjson.loads(line) for line in logs.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["message"] == "stored 3 calls" and first["level"] == "INFO" and first["logger"] == "growthengine.test"
    assert first["request_id"] == "req-42" and first["route"] == "/v1/batch" and first["status"] == 200
    assert first["time"].endswith("+00:00")
    assert "request_id" not in second and second["level"] == "WARNING"


def test_text_lines_show_the_request_id(logs: io.StringIO) -> None:
    configure_logging("text", "DEBUG", stream=logs)
    token = request_id.set("abc123")
    try:
        logging.getLogger("growthengine.x").debug("hello")
    finally:
        request_id.reset(token)
    assert re.search(r" DEBUG +growthengine\.x \[req=abc123\]: hello$", logs.getvalue().strip())


def test_emails_and_phone_numbers_never_reach_a_line(logs: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=logs)
    log = logging.getLogger("growthengine.test")
    log.info("user wrote from %s and %s and 081-234-5678", EMAIL, PHONE)
    try:
        raise ValueError(f"provider refused {EMAIL}")
    except ValueError:
        log.exception("send failed")
    text = logs.getvalue()
    assert not PII.search(text), text
    assert "<address>" in text and "<phone>" in text


def test_levels_and_quiet_libraries(logs: io.StringIO) -> None:
    assert parse_level("debug", logging.INFO) == logging.DEBUG
    assert parse_level(None, logging.WARNING) == logging.WARNING
    with pytest.raises(ValueError, match="GROWTH_LOG_LEVEL"):
        parse_level("LOUD", logging.INFO)
    configure_logging("text", None, default_level=logging.INFO, stream=logs)
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    assert logs.getvalue() == "", "Alembic's INFO lines are chatter"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_whole_run_logs_no_personal_data(logs: io.StringIO, sqlite_url: str, clock: ManualClock,
                                                 tmp_path: Path, anyio_backend: str) -> None:
    """A user with an email and a phone number goes through ingestion, segments, a flow and its sends, the API
    with an access log and a failing request, at DEBUG: no line names them."""
    settings = Settings(db_url=sqlite_url, data_dir=tmp_path / "data", clock="manual", clock_start=clock.now(),
                        access_log=True)
    configure_logging("json", "DEBUG", stream=logs)
    engine = build_engine(settings, clock=clock)
    try:
        app = create_app(engine, KeyRing.from_keys([ADMIN_KEY], [WRITE_KEY]), run_workers=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            consent = {"push": True, "email": True, "sms": True, "in_app": True}
            traits = {"email": EMAIL, "phone": PHONE, "name": "Somchai Jaidee", "consent": consent,
                      "push_token": "tok"}
            await client.post("/v1/identify", json={"userId": "u-1", "traits": traits}, headers=WRITE)
            await client.post("/v1/identify", json={"userId": "u-2", "traits": {"email": "not an email"}},
                              headers=WRITE)
            cart = {"userId": "u-1", "event": "add_to_cart",
                    "properties": {"listing_id": "L1", "title": "Camera", "price": 100, "stock": 1}}
            await client.post("/v1/track", json=cart, headers=WRITE)
            await client.post("/v1/clock/advance", json={"by": "PT50H"}, headers=ADMIN)
            await client.get("/v1/users/u-1", headers=ADMIN)
            await client.get(f"/v1/messages?userId={EMAIL}", headers=ADMIN)
            await client.get("/metrics", headers=ADMIN)
    finally:
        engine.close()
    text = logs.getvalue()
    assert '"route":"/v1/identify"' in text, "the access log ran"
    assert not PII.search(text), [line for line in text.splitlines() if PII.search(line)]
    for line in text.splitlines():
        entry = orjson.loads(line)
        if entry["logger"] == "growthengine.access":
            assert entry["request_id"]

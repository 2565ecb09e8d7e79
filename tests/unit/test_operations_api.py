"""Operating (CONTRACT.md 9) in-process: health and readiness, metrics, request ids, named keys, the limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from growthengine.api.app import create_app
from growthengine.api.auth import KeyRing
from growthengine.bootstrap import build_engine
from growthengine.channels.delivery import DeliveryWorker
from growthengine.channels.providers.base import Delivery, OutboundMessage
from growthengine.clock import ManualClock, to_us
from growthengine.domain.messages import Message
from growthengine.engine import Engine
from growthengine.keys import create_key, load_keyring, revoke_key
from growthengine.observability.metrics import EngineMetrics, sample_values
from growthengine.settings import Settings
from tests.unit.api_client import ADMIN, ADMIN_KEY, WRITE, WRITE_KEY, assert_error, assert_ingest

pytestmark = pytest.mark.anyio

METRICS_KEY = "scraper-token"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _engine(sqlite_url: str, clock: ManualClock, tmp_path: Path, **settings: Any) -> Engine:
    values: dict[str, Any] = {"db_url": sqlite_url, "data_dir": tmp_path / "data", "clock": "manual",
                              "clock_start": clock.now(), "metrics_key": METRICS_KEY, **settings}
    return build_engine(Settings(**values), clock=clock)


@pytest.fixture
def ops_engine(sqlite_url: str, clock: ManualClock, tmp_path: Path) -> Iterator[Engine]:
    engine = _engine(sqlite_url, clock, tmp_path)
    yield engine
    engine.close()


async def _client(engine: Engine, keys: KeyRing | None = None, lag: Any = None) -> httpx.AsyncClient:
    app = create_app(engine, keys or KeyRing.from_keys([ADMIN_KEY], [WRITE_KEY]), run_workers=False, lag=lag)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def client(ops_engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(ops_engine) as c:
        yield c


async def test_healthz_and_readyz_need_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]
    assert body["checks"]["migrations"]["current"] == body["checks"]["migrations"]["head"]
    assert body["checks"]["pipeline"]["ok"]


async def test_readyz_is_503_while_a_stage_lags_past_its_limit(ops_engine: Engine) -> None:
    lag = {"segments": 1.0, "flows": 120.0}
    async with await _client(ops_engine, lag=lambda: lag) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503, response.text
        pipeline = response.json()["checks"]["pipeline"]
        assert not pipeline["ok"] and pipeline["lag_s"] == lag and pipeline["max_lag_s"] == 60.0
        lag["flows"] = 2.0
        assert (await client.get("/readyz")).status_code == 200


async def test_readyz_is_503_when_the_schema_is_behind(ops_engine: Engine, client: httpx.AsyncClient) -> None:
    with ops_engine.store.transaction() as tx:
        tx.conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == {
        "ok": False, "current": "0001", "head": response.json()["checks"]["migrations"]["head"],
        "error": "the schema is not the one this engine needs: run growth db upgrade"}


async def test_metrics_need_the_admin_key_or_the_metrics_key(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/metrics"), 401)
    assert_error(await client.get("/metrics", headers=WRITE), 403)
    for auth in (ADMIN, {"Authorization": f"Bearer {METRICS_KEY}"}):
        response = await client.get("/metrics", headers=auth)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
    # The metrics key opens nothing else.
    assert_error(await client.get("/v1/segments", headers={"Authorization": f"Bearer {METRICS_KEY}"}), 401)


async def test_the_scrape_counts_what_the_api_answered(client: httpx.AsyncClient) -> None:
    batch = {"batch": [{"type": "track", "userId": f"u{i}", "event": "app_opened", "messageId": f"m{i}"}
                       for i in range(5)] + [{"type": "track", "event": "no user"}]}
    assert_ingest(await client.post("/v1/batch", json=batch, headers=WRITE), 5, rejected=[5])
    assert_ingest(await client.post("/v1/batch", json=batch, headers=WRITE), 0, duplicates=5, rejected=[5])
    assert_ingest(await client.post("/v1/track", json={"userId": "u9", "event": "app_opened"}, headers=WRITE), 1)
    assert_error(await client.post("/v1/track", content=b"{", headers=WRITE), 400)
    text = (await client.get("/metrics", headers=ADMIN)).text
    for name in ("growth_events_ingested_total", "growth_pipeline_lag_seconds", "growth_timers_due",
                 "growth_messages_total", "growth_provider_requests_total", "growth_provider_latency_seconds",
                 "growth_db_pool_connections", "growth_http_requests_total", "growth_rate_limited_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in text or f"# TYPE {name}" in text, name
    assert sample_values(text, "growth_events_ingested_total") == {"": 6.0}
    assert sample_values(text, "growth_events_duplicate_total") == {"": 5.0}
    assert sample_values(text, "growth_events_rejected_total") == {"": 2.0}
    requests = sample_values(text, "growth_http_requests_total")
    assert requests['{method="POST",route="/v1/batch",status="200"}'] == 2.0
    assert requests['{method="POST",route="/v1/track",status="400"}'] == 1.0


async def test_messages_by_status_and_reason_come_from_the_ledger(ops_engine: Engine,
                                                                  client: httpx.AsyncClient) -> None:
    consent = {"push": True, "email": True, "sms": False, "in_app": True}
    await client.post("/v1/identify", json={"userId": "m1", "traits": {"consent": consent, "push_token": "t"}},
                      headers=WRITE)
    cart = {"userId": "m1", "event": "add_to_cart",
            "properties": {"listing_id": "L1", "title": "Camera", "price": 100, "stock": 2}}
    assert_ingest(await client.post("/v1/track", json=cart, headers=WRITE), 1)
    assert (await client.post("/v1/clock/advance", json={"by": "PT50H"}, headers=ADMIN)).status_code == 200
    messages = (await client.get("/v1/messages?limit=1000", headers=ADMIN)).json()["messages"]
    assert messages
    samples = sample_values((await client.get("/metrics", headers=ADMIN)).text, "growth_messages_total")
    expected: dict[str, float] = {}
    for m in messages:
        label = (f'{{channel="{m["channel"]}",flow="{m["flow"]}",reason="{m.get("reason") or ""}",'
                 f'status="{m["status"]}"}}')
        expected[label] = expected.get(label, 0.0) + 1
    assert samples == expected
    timers = sample_values((await client.get("/metrics", headers=ADMIN)).text, "growth_timers_due")
    assert timers == {"": 0.0}, "the manual clock ran everything due"


async def test_a_request_id_is_kept_or_made_and_sent_back(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "lb-1234.abc"})
    assert response.headers["x-request-id"] == "lb-1234.abc"
    made = (await client.get("/healthz")).headers["x-request-id"]
    assert len(made) == 16 and made != "lb-1234.abc"
    odd = await client.get("/healthz", headers={"X-Request-Id": "x" * 300})
    assert odd.headers["x-request-id"] != "x" * 300


async def test_ingest_past_the_key_rate_is_429_with_retry_after(sqlite_url: str, clock: ManualClock,
                                                                tmp_path: Path) -> None:
    engine = _engine(sqlite_url, clock, tmp_path, ingest_rate_per_key=1.0, ingest_burst_per_key=3)
    try:
        async with await _client(engine) as client:
            track = {"userId": "u1", "event": "app_opened"}
            statuses = [(await client.post("/v1/track", json=track, headers=WRITE)).status_code for _ in range(5)]
            assert statuses == [200, 200, 200, 429, 429]
            limited = await client.post("/v1/track", json=track, headers=WRITE)
            assert_error(limited, 429, "rate_limited")
            assert int(limited.headers["retry-after"]) >= 1
            # Another key has a bucket of its own; reads are not limited.
            assert (await client.post("/v1/track", json=track, headers=ADMIN)).status_code == 200
            assert (await client.get("/v1/segments", headers=ADMIN)).status_code == 200
            text = (await client.get("/metrics", headers=ADMIN)).text
            assert sample_values(text, "growth_rate_limited_total") == {'{limit="ingest"}': 3.0}
    finally:
        engine.close()


async def test_many_wrong_keys_from_one_address_get_429(sqlite_url: str, clock: ManualClock,
                                                        tmp_path: Path) -> None:
    engine = _engine(sqlite_url, clock, tmp_path, failed_key_limit=3, failed_key_window_s=600)
    try:
        async with await _client(engine) as client:
            wrong = {"Authorization": "Bearer guess"}
            statuses = [(await client.get("/v1/segments", headers=wrong)).status_code for _ in range(5)]
            assert statuses == [401, 401, 401, 429, 429]
            # Locked out: even the right key waits, so that guessing stops; a missing key is still just 401.
            assert_error(await client.get("/v1/segments", headers=ADMIN), 429, "rate_limited")
            assert_error(await client.get("/v1/segments"), 401)
    finally:
        engine.close()


async def test_named_keys_work_at_once_and_stop_when_revoked(sqlite_url: str, clock: ManualClock,
                                                             tmp_path: Path) -> None:
    engine = _engine(sqlite_url, clock, tmp_path, key_refresh_s=0.01)
    try:
        keys, made = load_keyring(engine.settings, engine.store)
        assert made is not None and made.startswith("ge_admin_"), "no admin key anywhere: one is made"
        async with await _client(engine, keys) as client:
            assert (await client.get("/v1/segments", headers={"Authorization": f"Bearer {made}"})).status_code == 200
            write = create_key(engine.store, "ios", "write")
            admin = create_key(engine.store, "ops", "admin")
            both = {"Authorization": f"Bearer {write}"}, {"Authorization": f"Bearer {admin}"}
            assert (await client.post("/v1/track", json={"userId": "u", "event": "e"}, headers=both[0])).status_code \
                == 200
            assert_error(await client.get("/v1/segments", headers=both[0]), 403)
            assert (await client.get("/v1/segments", headers=both[1])).status_code == 200
            revoke_key(engine.store, "ios")
            time.sleep(0.02)
            assert_error(await client.post("/v1/track", json={"userId": "u", "event": "e"}, headers=both[0]), 401)
        again, made_again = load_keyring(engine.settings, engine.store)
        assert made_again is None, "an admin key exists: none is made"
        assert again.role_of(admin) == "admin"
    finally:
        engine.close()


def test_provider_calls_are_counted_and_timed(engine: Engine) -> None:
    """Counted from what the delivery worker recorded, so a scrape of any process sees every worker's calls."""

    class Flaky:
        name = "fcm"
        channel = "push"

        def __init__(self) -> None:
            self.calls = 0

        def send(self, message: OutboundMessage) -> Delivery:
            self.calls += 1
            if self.calls == 1:
                return Delivery.sent("fcm", "p1")
            if self.calls == 2:
                return Delivery.failed("fcm", "HTTP 503", permanent=False)
            raise RuntimeError("boom")

    now_us = to_us(engine.clock.now())
    with engine.store.transaction() as tx:
        for n in range(3):
            tx.messages.add([Message(id=f"m{n}", user_id="u", flow="f", step="s", channel="push", kind="marketing",
                                     status="scheduled", scheduled_us=now_us, updated_us=now_us, body="b")])
        tx.messages.to_outbox_many([{"message_id": f"m{n}", "channel": "push", "provider": "fcm",
                                     "payload": {"id": f"m{n}", "user_id": "u", "channel": "push",
                                                 "kind": "marketing", "to": "token"},
                                     "created_us": now_us} for n in range(3)], pending=True)
    DeliveryWorker(engine.store, {"fcm": Flaky()}, engine.clock, "test-worker").drain()
    text = EngineMetrics(engine).render().decode()
    assert sample_values(text, "growth_provider_requests_total") == {
        '{outcome="error",provider="fcm"}': 1.0, '{outcome="failed_transient",provider="fcm"}': 1.0,
        '{outcome="sent",provider="fcm"}': 1.0}
    assert sample_values(text, "growth_provider_latency_seconds_count") == {'{provider="fcm"}': 3.0}
    assert sample_values(text, "growth_provider_latency_seconds_bucket")['{le="+Inf",provider="fcm"}'] == 3.0


def test_two_apps_in_one_process_keep_their_own_counts(engine: Engine) -> None:
    first = create_app(engine, KeyRing.from_keys([ADMIN_KEY], []), run_workers=False)
    second = create_app(engine, KeyRing.from_keys([ADMIN_KEY], []), run_workers=False)
    first.state.metrics.events_ingested.inc(3)
    assert sample_values(second.state.metrics.render().decode(), "growth_events_ingested_total") == {"": 0.0}

"""Operating a real ``growth serve`` (CONTRACT.md 9): health, readiness and a scrape whose counters match the API;
JSON logs with request ids and no personal data; key rotation with no failed request; 429 under a burst."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from growthengine.observability.metrics import sample_values
from tests.e2e.serve import START, clean_env, growth_command, serving

pytestmark = pytest.mark.e2e

ADMIN_KEY = "ops-admin-key"
WRITE_KEY = "ops-write-key"
METRICS_KEY = "ops-metrics-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
MANUAL = ["--clock", "manual", "--start", START]
EMAIL = "nok.siriwan@example.co.th"
PII = re.compile(r"nok\.siriwan|example\.co\.th|66898765432|089-?876-?5432")


def growth(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One ``growth`` command in ``cwd`` (the default database is ``./data/growth.db`` there)."""
    return subprocess.run([*growth_command(), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=60, check=False)


def scrape(http: httpx.Client) -> str:
    response = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert response.status_code == 200, response.text
    return response.text


def test_health_readiness_and_a_scrape_that_matches_the_api(tmp_path: Path) -> None:
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY, metrics_key=METRICS_KEY, log_format="json",
                    log_level="DEBUG", access_log="1")
    with serving(tmp_path, MANUAL, env) as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz", headers={"X-Request-Id": "probe-1"})
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
        assert ready.headers["x-request-id"] == "probe-1"

        consent = {"push": True, "email": True, "sms": True, "in_app": True}
        identify = {"userId": "buyer-1", "traits": {"email": EMAIL, "phone": "+66898765432", "consent": consent,
                                                    "push_token": "tok-1"}}
        assert http.post("/v1/identify", json=identify, headers=WRITE).status_code == 200

        def send(sender: int) -> tuple[int, int]:
            accepted = duplicates = 0
            with httpx.Client(base_url=server.base_url, timeout=10) as own:
                for n in range(5):
                    calls = [{"type": "track", "userId": f"s{sender}", "event": "item_viewed",
                              "messageId": f"{sender}-{n}-{i}", "properties": {"listing_id": f"L{i}"}}
                             for i in range(20)]
                    calls.append({"type": "track", "userId": f"s{sender}", "event": "item_viewed",
                                  "messageId": f"{sender}-{n}-0"})  # a duplicate in every request
                    body = own.post("/v1/batch", json={"batch": calls}, headers=WRITE).json()
                    accepted += body["accepted"]
                    duplicates += body["duplicates"]
            return accepted, duplicates

        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(send, range(6)))
        cart = {"userId": "buyer-1", "event": "add_to_cart",
                "properties": {"listing_id": "L1", "title": "Film camera", "price": 2500, "stock": 1}}
        assert http.post("/v1/track", json=cart, headers=WRITE).json()["accepted"] == 1
        assert http.post("/v1/clock/advance", json={"by": "PT50H"}, headers=ADMIN).status_code == 200

        text = scrape(http)
        accepted = 1 + sum(a for a, _ in results) + 1
        assert sample_values(text, "growth_events_ingested_total") == {"": float(accepted)}
        assert sample_values(text, "growth_events_duplicate_total") == {"": float(sum(d for _, d in results))}
        messages = http.get("/v1/messages", params={"limit": 1000}, headers=ADMIN).json()["messages"]
        assert messages, "the cart flow sent"
        by_status = Counter(m["status"] for m in messages)
        scraped: Counter[str] = Counter()
        for labels, value in sample_values(text, "growth_messages_total").items():
            scraped[re.search(r'status="(\w+)"', labels).group(1)] += int(value)  # type: ignore[union-attr]
        assert scraped == by_status
        assert sample_values(text, "growth_timers_due") == {"": 0.0}
        assert "growth_pipeline_lag_seconds" in text and "growth_provider_latency_seconds" in text
        assert http.get("/metrics", headers=WRITE).status_code == 403
        assert http.get("/metrics").status_code == 401
    output = server.output()
    assert not PII.search(output), [line for line in output.splitlines() if PII.search(line)]
    entries = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "growthengine.access"]
    assert any(e["request_id"] == "probe-1" and e["route"] == "/readyz" for e in access), access[:3]
    assert all(e["request_id"] for e in access)
    assert {e["route"] for e in access} >= {"/v1/batch", "/v1/identify", "/metrics", "/healthz"}


def test_key_rotation_with_no_failed_request(tmp_path: Path) -> None:
    made = growth(tmp_path, "keys", "create", "app-2025", "--role", "write")
    assert made.returncode == 0, made.stderr
    old_key = made.stdout.strip()
    assert old_key.startswith("ge_write_") and "\n" not in old_key
    env = clean_env(api_key=ADMIN_KEY, key_refresh_s="0.5")
    with serving(tmp_path, [], env) as server:
        current = [old_key]
        statuses: list[int] = []
        stop = threading.Event()

        def keep_sending() -> None:
            with httpx.Client(base_url=server.base_url, timeout=10) as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    response = http.post("/v1/track", json={"userId": "u1", "event": "app_opened",
                                                            "messageId": f"rot-{n}"},
                                         headers={"Authorization": f"Bearer {current[0]}"})
                    statuses.append(response.status_code)
                    time.sleep(0.01)

        sender = threading.Thread(target=keep_sending)
        sender.start()
        try:
            time.sleep(0.5)
            made = growth(tmp_path, "keys", "create", "app-2026", "--role", "write")
            assert made.returncode == 0, made.stderr
            current[0] = made.stdout.strip()  # the clients move to the new key ...
            time.sleep(0.5)
            revoked = growth(tmp_path, "keys", "revoke", "app-2025")  # ... then the old one goes
            assert revoked.returncode == 0, revoked.stderr
            time.sleep(1.5)
        finally:
            stop.set()
            sender.join()
        assert len(statuses) > 20 and set(statuses) == {200}, Counter(statuses)
        with httpx.Client(base_url=server.base_url) as http:
            old = http.post("/v1/track", json={"userId": "u1", "event": "x"},
                            headers={"Authorization": f"Bearer {old_key}"})
            assert old.status_code == 401, old.text
        listed = growth(tmp_path, "keys", "list")
        assert re.search(r"app-2025 .*revoked", listed.stdout) and re.search(r"app-2026 .*active", listed.stdout)


def test_a_burst_gets_429_with_retry_after_and_recovers(tmp_path: Path) -> None:
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY, metrics_key=METRICS_KEY, ingest_rate_per_key="5",
                    ingest_burst_per_key="10", failed_key_limit="5")
    with serving(tmp_path, MANUAL, env) as server, httpx.Client(base_url=server.base_url, timeout=10) as http:

        def post(n: int) -> httpx.Response:
            return http.post("/v1/track", json={"userId": "u1", "event": "e", "messageId": f"b{n}"}, headers=WRITE)

        with ThreadPoolExecutor(max_workers=8) as pool:
            burst = list(pool.map(post, range(40)))
        codes = Counter(r.status_code for r in burst)
        assert set(codes) == {200, 429} and 10 <= codes[200] <= 14, codes
        limited = [r for r in burst if r.status_code == 429]
        assert all(r.json()["error"]["code"] == "rate_limited" for r in limited)
        wait = max(int(r.headers["retry-after"]) for r in limited)
        assert 1 <= wait <= 2
        time.sleep(wait)
        assert post(100).status_code == 200, "recovered after Retry-After"
        assert (http.get("/v1/segments", headers=ADMIN).status_code == 200), "reads are not limited"
        text = scrape(http)
        assert sample_values(text, "growth_rate_limited_total") == {'{limit="ingest"}': float(codes[429])}
        # Wrong keys: 401 five times, then 429 for that address.
        wrong = [http.get("/v1/segments", headers={"Authorization": f"Bearer guess-{i}"}).status_code
                 for i in range(7)]
        assert wrong == [401] * 5 + [429] * 2

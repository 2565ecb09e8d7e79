"""A provider that takes 2 s a call does not slow the API: deliveries run in the worker's own thread, outside every
transaction and off the event loop, while ingestion and reads answer as usual (the real clock, a real process)."""

from __future__ import annotations

import json
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from growthengine.observability.metrics import sample_values
from tests.e2e.serve import clean_env, daytime_zone, serving

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer slow-admin"}
SEND = "/v1/projects/jaikod-test/messages:send"



def _timed_gets(base_url: str, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=base_url, headers=ADMIN, timeout=30) as client:
        for _ in range(n):
            began = time.perf_counter()
            assert client.get("/v1/clock").status_code == 200
            out.append(time.perf_counter() - began)
    return out


def test_a_two_second_provider_leaves_the_api_responsive(httpserver: HTTPServer, tmp_path: Path) -> None:
    calls: list[str] = []
    in_flight = threading.Event()

    def slow(request: Request) -> Response:
        in_flight.set()
        time.sleep(2.0)  # the provider's own latency (a test double of FCM)
        calls.append(json.loads(request.get_data())["message"]["data"]["message_id"])
        return Response(json.dumps({"name": "projects/jaikod-test/messages/1"}), content_type="application/json")

    httpserver.expect_request(SEND, method="POST").respond_with_handler(slow)
    config = tmp_path / "growth.yaml"
    config.write_text(json.dumps({"settings": {
        "channel_providers": {"push": "fcm"},
        "provider_settings": {"fcm": {"project_id": "jaikod-test", "access_token": "token",
                                      "base_url": httpserver.url_for(""), "attempts": 1}}}}))
    args = ["--db", f"sqlite:///{tmp_path / 'growth.db'}", "--config", str(config)]
    with serving(tmp_path, args, clean_env(api_key="slow-admin")) as server:
        base = server.base_url
        quiet = _timed_gets(base, 20)  # before any delivery
        traits = {"push_token": "tok", "timezone": daytime_zone(), "consent": {"push": True}}
        batch = [{"type": "track", "userId": "seller", "event": "listing_created",
                  "properties": {"listing_id": "L1", "title": "Fuji", "price": 1000, "category": "cameras"}}]
        for n in range(5):
            batch.append({"type": "identify", "userId": f"fan{n}", "traits": traits})
            batch.append({"type": "track", "userId": f"fan{n}", "event": "favorite_added",
                          "properties": {"listing_id": "L1"}})
        assert httpx.post(f"{base}/v1/batch", json={"batch": batch}, headers=ADMIN, timeout=30).status_code == 200
        drop = {"userId": "seller", "event": "listing_price_changed",
                "properties": {"listing_id": "L1", "old_price": 1000, "new_price": 500}}
        began = time.perf_counter()
        assert httpx.post(f"{base}/v1/track", json=drop, headers=ADMIN, timeout=30).status_code == 200
        answered = time.perf_counter() - began
        assert in_flight.wait(30), "the pushes reach the provider"
        busy = _timed_gets(base, 20)  # while the provider sleeps on each push
        deadline = time.monotonic() + 60
        while len(calls) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(calls) == 5 and len(set(calls)) == 5, "every push delivered once"
        # The calls were made by the worker (a child process on SQLite); the API's scrape counts them all.
        deadline = time.monotonic() + 30
        counted: dict[str, float] = {}
        while time.monotonic() < deadline:
            scrape = httpx.get(f"{base}/metrics", headers=ADMIN, timeout=30).text
            counted = dict(sample_values(scrape, "growth_provider_requests_total"))
            if counted.get('{outcome="sent",provider="fcm"}') == 5.0:
                break
            time.sleep(0.2)
        assert counted == {'{outcome="sent",provider="fcm"}': 5.0}, counted
        assert answered < 2.0, f"the price change was answered before any provider call ended ({answered:.2f}s)"
        # While the provider takes 2 s a call, reads answer like they did before (no 2 s stall among them).
        assert max(busy) < 2.0, f"a read waited for the provider: {max(busy):.2f}s"
        print(f"GET /v1/clock median {statistics.median(quiet) * 1000:.1f} ms idle, "
              f"{statistics.median(busy) * 1000:.1f} ms while the provider is busy; track answered in "
              f"{answered * 1000:.0f} ms")

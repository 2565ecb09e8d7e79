"""Facebook Custom Audience sync against a local Marketing API double built from Meta's reference for
``/{custom_audience_id}/users`` (v27.0): form-encoded ``payload`` and ``session`` (JSON text) on POST, the same in the
query string on DELETE (as the Business SDK sends removals), the documented answer; hashing, batches, pacing,
throttling read from ``X-Business-Use-Case-Usage``."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from growthengine.channels.providers.audience import hash_email, key_number
from growthengine.channels.providers.base import CredentialsError, OutboundMessage, WebhookRejected
from growthengine.channels.providers.facebook_audience import FacebookAudienceConfig, FacebookAudienceProvider
from growthengine.channels.providers.rate_limit import TokenBucket

USERS = "/v27.0/23850000000001/users"


class FakeTime:
    """A monotonic clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


Make = Callable[..., FacebookAudienceProvider]


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make(server: HTTPServer, time_: FakeTime, http: httpx.Client) -> Make:
    def build(**settings: Any) -> FacebookAudienceProvider:
        config = FacebookAudienceConfig.from_settings({"access_token": "EAAB-token", "audience_id": "23850000000001",
                                                       "base_url": server.url_for(""), "backoff_s": 0.5,
                                                       "requests_per_s": 100, "burst": 100, **settings})
        return FacebookAudienceProvider(config, client=http, sleep=time_.sleep, monotonic=time_.monotonic)

    return build


def fields(request: Request) -> dict[str, Any]:
    """The request's parameters as Meta reads them: form fields on POST, the query string on DELETE, JSON inside."""
    if request.method == "DELETE":
        assert request.get_data() == b"", "a removal carries no body"
        raw = request.args
    else:
        assert request.mimetype == "application/x-www-form-urlencoded", request.mimetype
        raw = request.form
    return {name: json.loads(value) if name in ("payload", "session") else value for name, value in raw.items()}


def received(request: Request) -> Response:
    data = fields(request)["payload"]["data"]
    return Response(json.dumps({"audience_id": "23850000000001", "session_id": "9148116824400",
                                "num_received": len(data), "num_invalid_entries": 0, "invalid_entry_samples": {}}),
                    content_type="application/json")


def test_emails_are_normalized_and_hashed() -> None:
    expected = hashlib.sha256(b"somchai@example.co.th").hexdigest()
    assert hash_email("  SomChai@Example.co.th \n") == expected
    assert hash_email(expected.upper()) == expected  # already hashed: kept


def test_add_in_batches_of_at_most_ten_thousand(server: HTTPServer, make: Make) -> None:
    server.expect_request(USERS, method="POST", headers={"Authorization": "Bearer EAAB-token"}) \
        .respond_with_handler(received)
    emails = [f"user{i}@example.com" for i in range(25_001)] + ["USER0@example.com "]  # a duplicate after normalizing
    result = make().add(emails, key="winback-2026-01-05")
    assert (result.ok, result.requested, result.batches, result.received) == (True, 25_001, 3, 25_001)
    bodies = [fields(r) for r, _ in server.log]
    assert [len(b["payload"]["data"]) for b in bodies] == [10_000, 10_000, 5_001]
    assert {b["payload"]["schema"] for b in bodies} == {"EMAIL_SHA256"}
    assert bodies[0]["payload"]["data"][0] == hashlib.sha256(b"user0@example.com").hexdigest()
    sessions = [b["session"] for b in bodies]
    assert {s["session_id"] for s in sessions} == {key_number("winback-2026-01-05")}
    assert [(s["batch_seq"], s["last_batch_flag"]) for s in sessions] == [(1, False), (2, False), (3, True)]
    assert {s["estimated_num_total"] for s in sessions} == {25_001}
    assert "user0@example.com" not in server.log[0][0].get_data(as_text=True)


def test_the_add_is_form_encoded_as_meta_documents(server: HTTPServer, make: Make) -> None:
    server.expect_request(USERS, method="POST").respond_with_handler(received)
    assert make().add(["a@example.com"], key="k").ok
    raw = server.log[-1][0].get_data(as_text=True)
    assert raw.startswith("payload=%7B%22schema%22%3A%22EMAIL_SHA256%22%2C%22data%22%3A%5B%22")  # payload={"schema":…


def test_remove_uses_delete_with_the_query_string_and_the_app_secret_proof(server: HTTPServer, make: Make) -> None:
    server.expect_request(USERS, method="DELETE").respond_with_handler(received)
    result = make(app_secret="app-secret").remove(["a@example.com", "b@example.com"])
    assert (result.ok, result.action, result.received) == (True, "remove", 2)
    sent = fields(server.log[-1][0])
    assert sent["appsecret_proof"] == hmac.new(b"app-secret", b"EAAB-token", hashlib.sha256).hexdigest()
    assert sent["payload"] == {"schema": "EMAIL_SHA256", "data": [hash_email("a@example.com"),
                                                                 hash_email("b@example.com")]}
    assert "EAAB-token" not in server.log[-1][0].full_path  # the token travels in the Authorization header


def test_throttling_waits_as_the_usage_header_says(server: HTTPServer, make: Make, time_: FakeTime) -> None:
    usage = {"1234567890": [{"type": "custom_audience", "call_count": 100, "total_cputime": 28, "total_time": 31,
                             "estimated_time_to_regain_access": 0.25}]}
    server.expect_oneshot_request(USERS).respond_with_response(Response(
        json.dumps({"error": {"message": "(#80003) There have been too many calls to this ad-account.",
                              "type": "OAuthException", "code": 80003, "error_subcode": 2446079,
                              "is_transient": True}}),
        status=400, headers={"X-Business-Use-Case-Usage": json.dumps(usage)}, content_type="application/json"))
    server.expect_request(USERS).respond_with_handler(received)
    assert make().add(["a@example.com"]).ok
    assert time_.slept == [15.0]  # a quarter of a minute
    server.clear()
    usage["1234567890"][0]["estimated_time_to_regain_access"] = 30
    server.expect_request(USERS).respond_with_response(Response(
        json.dumps({"error": {"message": "(#80003) Too many calls", "code": 80003}}), status=400,
        headers={"X-Business-Use-Case-Usage": json.dumps(usage)}, content_type="application/json"))
    later = make().add(["b@example.com"])
    assert (later.ok, later.permanent) == (False, False)  # half an hour: given up for now, not held
    assert "retry after 1800s" in later.errors[0]


def test_requests_are_paced_by_the_token_bucket(server: HTTPServer, make: Make, time_: FakeTime) -> None:
    server.expect_request(USERS).respond_with_handler(received)
    result = make(batch_size=2, requests_per_s=2, burst=1).add([f"u{i}@example.com" for i in range(8)])
    assert result.batches == 4
    assert time_.slept == [0.5, 0.5, 0.5]


def test_throttling_is_retried_honouring_retry_after(server: HTTPServer, make: Make, time_: FakeTime) -> None:
    server.expect_oneshot_request(USERS).respond_with_response(Response(
        json.dumps({"error": {"message": "(#80003) There have been too many calls", "code": 80003}}), status=400,
        content_type="application/json"))
    server.expect_oneshot_request(USERS).respond_with_response(Response("{}", status=429, headers={"Retry-After": "4"}))
    server.expect_request(USERS).respond_with_handler(received)
    result = make().add(["a@example.com"])
    assert result.ok and time_.slept == [0.5, 4.0]


def test_a_permanent_error_stops_the_sync(server: HTTPServer, make: Make) -> None:
    server.expect_oneshot_request(USERS).respond_with_handler(received)
    server.expect_request(USERS).respond_with_json(
        {"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}, status=400)
    result = make(batch_size=1).add(["a@example.com", "b@example.com", "c@example.com"])
    assert (result.ok, result.permanent, result.batches) == (False, True, 1)
    assert result.errors == ["HTTP 400: Invalid OAuth access token."]
    assert len(server.log) == 2


def test_send_adds_one_member_keyed_by_the_message(server: HTTPServer, make: Make) -> None:
    server.expect_request(USERS, method="POST").respond_with_handler(received)
    server.expect_request(USERS, method="DELETE").respond_with_handler(received)
    msg = OutboundMessage(id="msg_ads_1", user_id="u-1", channel="ads", kind="marketing", to="Nida@Example.co.th")
    provider = make()
    delivery = provider.send(msg)
    assert (delivery.status, delivery.provider_id) == ("sent", str(key_number("msg_ads_1")))
    assert fields(server.log[-1][0])["payload"]["data"] == [hash_email("nida@example.co.th")]
    removal = OutboundMessage(id="msg_ads_2", user_id="u-1", channel="ads", kind="marketing",
                              to=hash_email("nida@example.co.th"), data={"audience_action": "remove"})
    assert provider.send(removal).status == "sent"
    assert server.log[-1][0].method == "DELETE"


def test_a_member_facebook_finds_invalid(server: HTTPServer, make: Make) -> None:
    server.expect_request(USERS).respond_with_json({"num_received": 1, "num_invalid_entries": 1})
    msg = OutboundMessage(id="msg_ads_3", user_id="u-1", channel="ads", kind="marketing", to="x@example.com")
    delivery = make().send(msg)
    assert (delivery.status, delivery.invalid_address) == ("failed", True)


def test_check_credentials_and_no_webhooks(server: HTTPServer, make: Make) -> None:
    audience = "/v27.0/23850000000001"
    server.expect_oneshot_request(audience).respond_with_json({"id": "23850000000001", "name": "Winback"})
    make().check_credentials()
    server.expect_oneshot_request(audience).respond_with_json(
        {"error": {"message": "Unsupported get request.", "code": 100}}, status=400)
    with pytest.raises(CredentialsError, match="Unsupported get request"):
        make().check_credentials()
    with pytest.raises(WebhookRejected):
        make().parse_webhook({}, b"")


def test_batch_size_is_capped() -> None:
    with pytest.raises(CredentialsError, match="batch_size"):
        FacebookAudienceConfig.from_settings({"access_token": "t", "audience_id": "1", "batch_size": 10_001})


def test_the_token_bucket_allows_a_burst_then_paces() -> None:
    fake = FakeTime()
    bucket = TokenBucket(rate=4, burst=2, clock=fake.monotonic, sleep=fake.sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits == [0.0, 0.0, 0.25, 0.25, 0.25]
    fake.now += 10  # idle: the bucket refills, but only up to the burst
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.25]


def test_the_token_bucket_paces_even_when_the_clock_does_not_move() -> None:
    slept: list[float] = []
    bucket = TokenBucket(rate=2, burst=1, clock=lambda: 0.0, sleep=slept.append)
    for _ in range(4):
        bucket.acquire()
    assert slept == [0.5, 1.0, 1.5]  # each caller waits for its own reserved slot

"""FCM HTTP v1 against a local double: a real service-account JWT traded for a token, the v1 message shape, errors."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from growthengine.channels.providers.base import CredentialsError, OutboundMessage, WebhookRejected
from growthengine.channels.providers.fcm import FcmConfig, FcmProvider
from tests.integration.channels.doubles import TokenEndpoint, service_account

SEND = "/v1/projects/jaikod-test/messages:send"
TOKEN = "ya29.aZ8x-unregistered-device-token"


Make = Callable[..., FcmProvider]


@pytest.fixture
def make(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> Make:
    """An FCM provider on the local double, its service account's token endpoint being ``tokens``."""

    def build(tokens: TokenEndpoint, **settings: object) -> FcmProvider:
        info = service_account(tokens.install(server))
        config = FcmConfig.from_settings({"service_account": info, "base_url": server.url_for(""), "backoff_s": 0.5,
                                          **settings})
        return FcmProvider(config, client=http, sleep=sleeps.append)

    return build


def push(**overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "id": "msg_0123456789abcdef01234567", "user_id": "u-42", "channel": "push", "kind": "marketing",
        "to": TOKEN, "title": "ลืมของไว้หรือเปล่า? 😲", "body": "กล้องฟิล์ม Olympus รอคุณอยู่!",
        "image_url": "https://img.jaikod.test/l/L1.jpg",
    }
    fields.update(overrides)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


def fcm_error(status: int, code: str, message: str, detail_code: str | None = None,
              field: str | None = None) -> Response:
    details: list[dict[str, object]] = []
    if detail_code:
        details.append({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": detail_code})
    if field:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": field, "description": "Invalid registration token"}]})
    body = {"error": {"code": status, "message": message, "status": code, "details": details}}
    return Response(json.dumps(body), status=status, content_type="application/json")


def test_a_high_urgency_push_with_an_image(server: HTTPServer, make: Make, caplog: pytest.LogCaptureFixture) -> None:
    tokens = TokenEndpoint()
    fcm = make(tokens)
    server.expect_request(SEND, method="POST").respond_with_json({"name": "projects/jaikod-test/messages/0:1"})
    with caplog.at_level(logging.DEBUG):
        delivery = fcm.send(push(urgency="high", data={"listing_id": "L1", "price": 450}))
    assert (delivery.status, delivery.provider_id) == ("sent", "projects/jaikod-test/messages/0:1")
    request = next(r for r, _ in server.log if r.path == SEND)
    assert request.headers["Authorization"] == "Bearer ya29.test-1"
    message = request.get_json()["message"]
    assert message["token"] == TOKEN
    assert message["notification"] == {"title": "ลืมของไว้หรือเปล่า? 😲", "body": "กล้องฟิล์ม Olympus รอคุณอยู่!",
                                       "image": "https://img.jaikod.test/l/L1.jpg"}
    assert message["data"] == {"listing_id": "L1", "price": "450", "message_id": "msg_0123456789abcdef01234567",
                               "kind": "marketing"}
    assert message["android"]["priority"] == "HIGH"
    assert message["android"]["notification"]["tag"] == "msg_0123456789abcdef01234567"
    assert message["apns"]["headers"] == {"apns-priority": "10", "apns-collapse-id": "msg_0123456789abcdef01234567"}
    assert message["apns"]["fcm_options"] == {"image": "https://img.jaikod.test/l/L1.jpg"}
    assert tokens.issued[0]["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    assert TOKEN not in caplog.text


def test_normal_urgency_and_the_token_is_reused(server: HTTPServer, make: Make) -> None:
    tokens = TokenEndpoint()
    fcm = make(tokens)
    server.expect_request(SEND, method="POST").respond_with_json({"name": "projects/jaikod-test/messages/0:2"})
    assert fcm.send(push(image_url=None)).status == "sent"
    assert fcm.send(push(id="msg_2")).status == "sent"
    first = next(r for r, _ in server.log if r.path == SEND).get_json()["message"]
    assert first["android"]["priority"] == "NORMAL"
    assert first["apns"]["headers"]["apns-priority"] == "5"
    assert "image" not in first["notification"]
    assert len(tokens.issued) == 1


@pytest.mark.parametrize(("response", "invalid"), [
    (fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"), True),
    (fcm_error(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token",
               "INVALID_ARGUMENT", "message.token"), True),
    (fcm_error(400, "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'", "INVALID_ARGUMENT",
               "message.android.ttl"), False),
    # The token belongs to another project's sender: it will never work for ours.
    (fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"), True),
    (fcm_error(403, "PERMISSION_DENIED", "Permission 'cloudmessaging.messages.create' denied"), False),
])
def test_refusals_are_permanent_and_dead_tokens_say_so(server: HTTPServer, make: Make, sleeps: list[float],
                                                       response: Response, invalid: bool) -> None:
    fcm = make(TokenEndpoint())
    server.expect_request(SEND, method="POST").respond_with_response(response)
    delivery = fcm.send(push())
    assert (delivery.status, delivery.permanent, delivery.invalid_address) == ("failed", True, invalid)
    assert delivery.reason is not None and delivery.reason.startswith(f"HTTP {response.status_code}")
    assert sleeps == []


def test_unregistered_reason_names_the_fcm_code(server: HTTPServer, make: Make) -> None:
    fcm = make(TokenEndpoint())
    server.expect_request(SEND).respond_with_response(fcm_error(404, "NOT_FOUND", "Requested entity was not found.",
                                                                "UNREGISTERED"))
    assert fcm.send(push()).reason == "HTTP 404: UNREGISTERED: Requested entity was not found."


def test_quota_exceeded_honours_retry_after_then_sends(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    fcm = make(TokenEndpoint())
    server.expect_oneshot_request(SEND).respond_with_response(Response(
        json.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota"}}), status=429,
        headers={"Retry-After": "3"}, content_type="application/json"))
    server.expect_request(SEND).respond_with_json({"name": "projects/jaikod-test/messages/0:3"})
    assert fcm.send(push()).status == "sent"
    assert sleeps == [3.0]


def test_unavailable_every_time_is_a_transient_failure(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    fcm = make(TokenEndpoint(), attempts=3)
    server.expect_request(SEND).respond_with_response(fcm_error(503, "UNAVAILABLE", "try later", "UNAVAILABLE"))
    delivery = fcm.send(push())
    assert (delivery.status, delivery.permanent, delivery.invalid_address) == ("failed", False, False)
    assert sleeps == [0.5, 1.0]


def test_a_401_fetches_a_fresh_token_once(server: HTTPServer, make: Make) -> None:
    tokens = TokenEndpoint()
    fcm = make(tokens)
    server.expect_oneshot_request(SEND).respond_with_response(fcm_error(401, "UNAUTHENTICATED", "expired"))
    server.expect_request(SEND).respond_with_json({"name": "projects/jaikod-test/messages/0:4"})
    assert fcm.send(push()).status == "sent"
    assert len(tokens.issued) == 2
    sent = [r for r, _ in server.log if r.path == SEND]
    assert [r.headers["Authorization"] for r in sent] == ["Bearer ya29.test-1", "Bearer ya29.test-2"]


def test_an_apns_auth_error_is_not_our_token_and_is_permanent(server: HTTPServer, make: Make,
                                                              sleeps: list[float]) -> None:
    tokens = TokenEndpoint()
    fcm = make(tokens)
    server.expect_request(SEND).respond_with_response(
        fcm_error(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service", "THIRD_PARTY_AUTH_ERROR"))
    for _ in range(3):  # iOS sends one after another: never a token refresh for them
        delivery = fcm.send(push())
        assert (delivery.status, delivery.permanent, delivery.invalid_address) == ("failed", True, False)
        assert delivery.reason is not None and "THIRD_PARTY_AUTH_ERROR" in delivery.reason
    assert len(tokens.issued) == 1
    assert sleeps == []


def test_ttl_on_every_platform(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> None:
    tokens = TokenEndpoint()
    info = service_account(tokens.install(server))
    server.expect_request(SEND, method="POST").respond_with_json({"name": "projects/jaikod-test/messages/0:9"})
    now = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    for ttl, expiration in ((3600, str(int(now.timestamp()) + 3600)), (0, "0")):
        config = FcmConfig.from_settings({"service_account": info, "base_url": server.url_for(""), "ttl_s": ttl})
        fcm = FcmProvider(config, client=http, sleep=sleeps.append, system_now=lambda: now)
        assert fcm.send(push()).status == "sent"
        message = [r for r, _ in server.log if r.path == SEND][-1].get_json()["message"]
        assert message["android"]["ttl"] == f"{ttl}s"
        assert message["apns"]["headers"]["apns-expiration"] == expiration
        assert message["webpush"]["headers"] == {"TTL": str(ttl), "Urgency": "normal"}
    with pytest.raises(CredentialsError, match="ttl_s"):
        FcmConfig.from_settings({"service_account": info, "ttl_s": 2_419_201})  # FCM's maximum is 4 weeks


def test_a_refused_service_account_fails_the_send_without_calling_fcm(server: HTTPServer, make: Make) -> None:
    fcm = make(TokenEndpoint(refuse=True))
    delivery = fcm.send(push())
    assert delivery.status == "failed" and not delivery.permanent
    assert delivery.reason is not None and "credentials" in delivery.reason
    assert not [r for r, _ in server.log if r.path == SEND]


def test_check_credentials(server: HTTPServer, make: Make) -> None:
    fcm = make(TokenEndpoint())
    server.expect_oneshot_request(SEND).respond_with_response(
        fcm_error(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"))
    fcm.check_credentials()
    probe = next(r for r, _ in server.log if r.path == SEND).get_json()
    assert probe["validate_only"] is True
    server.expect_request(SEND).respond_with_response(fcm_error(403, "PERMISSION_DENIED", "no"))
    with pytest.raises(CredentialsError, match="may not send"):
        fcm.check_credentials()
    server.clear()
    with pytest.raises(CredentialsError, match="access token"):
        make(TokenEndpoint(refuse=True)).check_credentials()


def test_config_needs_a_credential_and_a_project() -> None:
    with pytest.raises(CredentialsError, match="service_account"):
        FcmConfig.from_settings({"project_id": "p"})
    with pytest.raises(CredentialsError, match="project_id"):
        FcmConfig.from_settings({"access_token": "t"})
    with pytest.raises(CredentialsError, match="projct: Extra inputs"):
        FcmConfig.from_settings({"access_token": "t", "project_id": "p", "projct": "typo"})


def test_no_webhooks(make: Make) -> None:
    with pytest.raises(WebhookRejected):
        make(TokenEndpoint()).parse_webhook({}, b"{}")

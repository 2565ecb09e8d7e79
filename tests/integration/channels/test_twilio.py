"""Twilio SMS against a local double of the Messages API; status callbacks with X-Twilio-Signature; segments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from growthengine.channels.providers.base import REQUEST_URL_HEADER, CredentialsError, OutboundMessage, WebhookRejected
from growthengine.channels.providers.twilio import TwilioConfig, TwilioProvider, sms_segments, twilio_signature

SID = "AC0123456789abcdef0123456789abcdef"
SEND = f"/2010-04-01/Accounts/{SID}/Messages.json"
MID = "msg_1212121212121212abababab"
NOW = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)
CALLBACK = "https://growth.jaikod.test/v1/webhooks/twilio"

Make = Callable[..., TwilioProvider]


@pytest.fixture
def make(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> Make:
    def build(**settings: Any) -> TwilioProvider:
        config = TwilioConfig.from_settings({
            "account_sid": SID, "auth_token": "tw-secret", "from_number": "+6625550100", "base_url": server.url_for(""),
            "status_callback_url": CALLBACK, "backoff_s": 0.5, **settings})
        return TwilioProvider(config, client=http, sleep=sleeps.append, now=lambda: NOW)

    return build


def sms(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {"id": MID, "user_id": "u-3", "channel": "sms", "kind": "transactional",
                              "to": "+66812345678", "body": "รหัสยืนยัน JaiKod ของคุณคือ 4821"}
    fields.update(overrides)
    return OutboundMessage(**fields)


@pytest.mark.parametrize(("text", "segments"), [
    ("", 1),
    ("a" * 160, 1),
    ("a" * 161, 2),
    ("a" * 306, 2),
    ("a" * 307, 3),
    ("€" * 80, 1),           # extension characters cost two septets
    ("€" * 81, 2),
    ("a" * 152 + "€" + "a" * 10, 2),  # the escape pair is not split across segments
    ("ก" * 70, 1),           # any Thai: UCS-2
    ("ก" * 71, 2),
    ("ก" * 134, 2),
    ("ก" * 135, 3),
    ("a" * 69 + "😲", 2),    # an emoji is two UTF-16 units
    ("ราคาลงแล้ว! กล้อง Olympus เหลือเพียง ฿450 (จาก ฿600) 🔥", 1),
])
def test_segments(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


def test_the_message_form_and_basic_auth(server: HTTPServer, make: Make) -> None:
    server.expect_request(SEND, method="POST").respond_with_json({"sid": "SM001", "status": "queued"}, status=201)
    delivery = make().send(sms())
    assert (delivery.status, delivery.provider_id) == ("sent", "SM001")
    request = server.log[-1][0]
    assert request.authorization is not None
    assert (request.authorization.username, request.authorization.password) == (SID, "tw-secret")
    form = request.form
    assert (form["To"], form["From"], form["Body"]) == ("+66812345678", "+6625550100", "รหัสยืนยัน JaiKod ของคุณคือ 4821")
    callback = urlsplit(form["StatusCallback"])
    assert callback._replace(query="").geturl() == CALLBACK
    assert parse_qs(callback.query) == {"message_id": [MID]}


def test_a_messaging_service_instead_of_a_number(server: HTTPServer, make: Make) -> None:
    server.expect_request(SEND).respond_with_json({"sid": "SM002"}, status=201)
    make(from_number=None, messaging_service_sid="MG123").send(sms())
    form = server.log[-1][0].form
    assert form["MessagingServiceSid"] == "MG123" and "From" not in form


@pytest.mark.parametrize(("code", "invalid"), [(21211, True), (21614, True), (21610, False)])
def test_refusals(server: HTTPServer, make: Make, code: int, invalid: bool) -> None:
    server.expect_request(SEND).respond_with_json({"code": code, "message": "The 'To' number +66812345678 is bad",
                                                   "status": 400}, status=400)
    delivery = make().send(sms())
    assert (delivery.status, delivery.permanent, delivery.invalid_address) == ("failed", True, invalid)
    assert delivery.reason == f"HTTP 400: {code}: The 'To' number <phone> is bad"


def test_too_many_requests_honours_retry_after(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    server.expect_oneshot_request(SEND).respond_with_response(
        Response('{"code": 20429, "message": "Too Many Requests"}', status=429, headers={"Retry-After": "2"}))
    server.expect_request(SEND).respond_with_json({"sid": "SM003"}, status=201)
    assert make().send(sms()).provider_id == "SM003"
    assert sleeps == [2.0]


def test_a_retry_after_too_long_gives_up_for_now(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    server.expect_request(SEND).respond_with_response(Response("{}", status=429, headers={"Retry-After": "3600"}))
    delivery = make().send(sms())
    assert (delivery.status, delivery.permanent) == ("failed", False)
    assert sleeps == []


def test_twilios_published_signature_vectors() -> None:
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
              ("From", "+14158675309"), ("To", "+18005551212")]
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert twilio_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def callback(status: str, *, token: str = "tw-secret", **extra: str) -> tuple[dict[str, str], bytes]:
    url = f"{CALLBACK}?{urlencode({'message_id': MID})}"
    params = [("AccountSid", SID), ("MessageSid", "SM001"), ("MessageStatus", status), ("To", "+66812345678"),
              *extra.items()]
    headers = {REQUEST_URL_HEADER: url, "X-Twilio-Signature": twilio_signature(token, url, params)}
    return headers, urlencode(params).encode()


@pytest.mark.parametrize(("status", "ours", "reason"), [
    ("delivered", "delivered", None), ("undelivered", "failed", "error 30003"), ("failed", "failed", "error 30003"),
])
def test_status_callbacks(make: Make, status: str, ours: str, reason: str | None) -> None:
    extra = {} if status == "delivered" else {"ErrorCode": "30003"}
    [event] = make().parse_webhook(*callback(status, **extra))
    assert (event.message_id, event.status, event.reason, event.at, event.raw_type) == (MID, ours, reason, NOW, status)


def test_interim_statuses_give_nothing(make: Make) -> None:
    assert make().parse_webhook(*callback("sent")) == []


def test_forged_callbacks_are_rejected(make: Make) -> None:
    provider = make()
    headers, body = callback("delivered", token="someone-else")
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.parse_webhook(headers, body)
    headers, body = callback("delivered")
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.parse_webhook(headers, body.replace(b"delivered", b"undelivered"))
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.parse_webhook(dict(headers, **{REQUEST_URL_HEADER: CALLBACK + "?message_id=msg_other"}), body)
    with pytest.raises(WebhookRejected, match="not signed"):
        provider.parse_webhook({REQUEST_URL_HEADER: CALLBACK}, body)
    with pytest.raises(WebhookRejected, match="request URL"):
        provider.parse_webhook({"X-Twilio-Signature": headers["X-Twilio-Signature"]}, body)


def test_check_credentials(server: HTTPServer, make: Make) -> None:
    account = f"/2010-04-01/Accounts/{SID}.json"
    server.expect_oneshot_request(account).respond_with_json({"sid": SID, "status": "active"})
    make().check_credentials()
    server.expect_oneshot_request(account).respond_with_json({"sid": SID, "status": "suspended"})
    with pytest.raises(CredentialsError, match="suspended"):
        make().check_credentials()
    server.expect_oneshot_request(account).respond_with_json({"code": 20003}, status=401)
    with pytest.raises(CredentialsError, match="refused"):
        make().check_credentials()


def test_a_sender_is_required() -> None:
    with pytest.raises(CredentialsError, match="from_number or messaging_service_sid"):
        TwilioConfig.from_settings({"account_sid": SID, "auth_token": "t"})


def test_a_signature_over_the_url_without_its_port(make: Make) -> None:
    headers, body = callback("delivered")
    with_port = headers[REQUEST_URL_HEADER].replace("growth.jaikod.test/", "growth.jaikod.test:443/")
    [event] = make().parse_webhook(dict(headers, **{REQUEST_URL_HEADER: with_port}), body)
    assert event.message_id == MID

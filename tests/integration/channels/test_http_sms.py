"""The generic HTTP SMS gateway adapter against a local double: the body template, auth, idempotency, reports."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer

from growthengine.channels.providers.base import CredentialsError, OutboundMessage, WebhookRejected
from growthengine.channels.providers.http_sms import HttpSmsConfig, HttpSmsProvider, format_phone, render
from tests.integration.channels.doubles import hmac_hex

PATH = "/api/v2/sms/send"
MID = "msg_3434343434343434cdcdcdcd"
NOW = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)

Make = Callable[..., HttpSmsProvider]


@pytest.fixture
def make(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> Make:
    def build(**settings: Any) -> HttpSmsProvider:
        config = HttpSmsConfig.from_settings({"url": server.url_for(PATH), "sender": "JaiKod",
                                              "auth_value": "Bearer gw-key", "webhook_secret": "dlr-secret",
                                              "backoff_s": 0.5, **settings})
        return HttpSmsProvider(config, client=http, sleep=sleeps.append, now=lambda: NOW)

    return build


def sms(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {"id": MID, "user_id": "u-9", "channel": "sms", "kind": "marketing",
                              "to": "+66812345678", "body": "ราคาลงแล้ว! กล้อง เหลือเพียง ฿450 🔥"}
    fields.update(overrides)
    return OutboundMessage(**fields)


def test_the_default_template(server: HTTPServer, make: Make) -> None:
    server.expect_request(PATH, method="POST", headers={"Authorization": "Bearer gw-key", "Idempotency-Key": MID}) \
        .respond_with_json({"id": "gw-77", "status": "accepted"})
    delivery = make().send(sms())
    assert (delivery.status, delivery.provider_id) == ("sent", "gw-77")
    assert server.log[-1][0].get_json() == {"to": "+66812345678", "text": "ราคาลงแล้ว! กล้อง เหลือเพียง ฿450 🔥",
                                            "sender": "JaiKod", "reference": MID}


def test_a_custom_template_for_a_local_gateway(server: HTTPServer, make: Make) -> None:
    server.expect_request(PATH, method="PUT").respond_with_json({"data": {"message": {"uid": 12}}})
    provider = make(method="PUT", phone_format="national_th", auth_header="X-Api-Key", auth_value="k-1",
                    idempotency_header=None, id_field="data.message.uid", body_template={
                        "msisdn": ["{to}"], "message": "[{sender}] {text}", "parts": "{segments}",
                        "meta": {"ref": "{message_id}", "fixed": 1}})
    assert provider.send(sms()).provider_id == "12"
    request = server.log[-1][0]
    assert request.headers["X-Api-Key"] == "k-1" and "Idempotency-Key" not in request.headers
    assert request.get_json() == {"msisdn": ["0812345678"], "message": "[JaiKod] ราคาลงแล้ว! กล้อง เหลือเพียง ฿450 🔥",
                                  "parts": 1, "meta": {"ref": MID, "fixed": 1}}


def test_placeholders_are_not_format_strings() -> None:
    assert render({"t": "{text}"}, {"to": "", "text": "{0.__class__} {sender}", "sender": "S", "message_id": "",
                                    "segments": 1}) == {"t": "{0.__class__} {sender}"}


@pytest.mark.parametrize(("style", "expected"), [("e164", "+66812345678"), ("digits", "66812345678"),
                                                 ("national_th", "0812345678")])
def test_phone_formats(style: str, expected: str) -> None:
    assert format_phone("+66812345678", style) == expected


def test_refusal_and_retry(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    server.expect_oneshot_request(PATH).respond_with_json({"error": "gateway busy"}, status=502)
    server.expect_oneshot_request(PATH).respond_with_json({"id": "gw-78"})
    assert make().send(sms()).provider_id == "gw-78"
    assert sleeps == [0.5]
    server.expect_request(PATH).respond_with_json({"error": {"message": "invalid msisdn"}}, status=422)
    delivery = make().send(sms())
    assert (delivery.status, delivery.permanent, delivery.reason) == ("failed", True, "HTTP 422: invalid msisdn")


def test_signed_delivery_reports(make: Make) -> None:
    body = json.dumps([
        {"reference": MID, "status": "DELIVERED", "timestamp": 1767578400},
        {"reference": "msg_b", "status": "expired", "timestamp": "2026-01-05T09:30:00+07:00"},
        {"reference": "msg_c", "status": "submitted"},
        {"status": "delivered"},
    ]).encode()
    events = make().parse_webhook({"X-Signature": hmac_hex("dlr-secret", body)}, body)
    assert [(e.message_id, e.status, e.reason, e.at) for e in events] == [
        (MID, "delivered", None, NOW), ("msg_b", "failed", "expired", dt.datetime(2026, 1, 5, 2, 30, tzinfo=dt.UTC))]


def test_base64_signatures_and_a_single_report(make: Make) -> None:
    body = json.dumps({"ref": MID, "state": "failed"}).encode()
    digest = base64.b64encode(hmac.new(b"dlr-secret", body, hashlib.sha256).digest()).decode()
    provider = make(webhook_signature_encoding="base64", webhook_signature_header="X-Hub-Signature-256",
                    webhook_id_field="ref", webhook_status_field="state", webhook_time_field=None)
    [event] = provider.parse_webhook({"x-hub-signature-256": "sha256=" + digest}, body)
    assert (event.message_id, event.status, event.at) == (MID, "failed", NOW)


def test_bad_signatures_are_rejected(make: Make) -> None:
    body = json.dumps({"reference": MID, "status": "delivered"}).encode()
    with pytest.raises(WebhookRejected, match="does not match"):
        make().parse_webhook({"X-Signature": hmac_hex("wrong", body)}, body)
    with pytest.raises(WebhookRejected, match="does not match"):
        make().parse_webhook({}, body)
    with pytest.raises(WebhookRejected, match="webhook_secret"):
        make(webhook_secret=None).parse_webhook({"X-Signature": hmac_hex("dlr-secret", body)}, body)


def test_check_credentials(server: HTTPServer, make: Make) -> None:
    server.expect_oneshot_request(PATH, method="HEAD").respond_with_data("", status=405)
    make().check_credentials()
    server.expect_oneshot_request(PATH, method="HEAD").respond_with_data("", status=401)
    with pytest.raises(CredentialsError, match="refused"):
        make().check_credentials()
    with pytest.raises(CredentialsError, match="not an http"):
        make(url="ftp://gateway").check_credentials()


def test_a_form_body_with_basic_auth(server: HTTPServer, make: Make) -> None:
    # The shape of the common Thai gateways: form fields, HTTP Basic auth with the API key and secret.
    server.expect_request(PATH, method="POST").respond_with_json({"data": {"id": "gw-77"}}, status=201)
    provider = make(body_format="form", auth_value=None, username="api-key", password="api-secret",
                    body_template={"msisdn": "{to}", "message": "{text}", "sender": "{sender}", "ref": "{message_id}",
                                   "parts": "{segments}"}, phone_format="national_th", id_field="data.id")
    delivery = provider.send(sms())
    assert (delivery.status, delivery.provider_id) == ("sent", "gw-77")
    request = server.log[-1][0]
    assert request.mimetype == "application/x-www-form-urlencoded"
    assert request.form.to_dict() == {"msisdn": "0812345678", "message": "ราคาลงแล้ว! กล้อง เหลือเพียง ฿450 🔥",
                                      "sender": "JaiKod", "ref": MID, "parts": "1"}
    assert request.authorization is not None
    assert (request.authorization.username, request.authorization.password) == ("api-key", "api-secret")


def test_form_and_credential_settings_are_checked() -> None:
    with pytest.raises(CredentialsError, match="flat"):
        HttpSmsConfig.from_settings({"url": "https://gw.test", "body_format": "form",
                                     "body_template": {"to": "{to}", "meta": {"ref": "{message_id}"}}})
    with pytest.raises(CredentialsError, match="both username and password"):
        HttpSmsConfig.from_settings({"url": "https://gw.test", "username": "u"})
    with pytest.raises(CredentialsError, match="webhook_verifier"):
        HttpSmsConfig.from_settings({"url": "https://gw.test", "webhook_verifier": "md5"})


def test_a_form_report_verified_by_a_token_in_the_callback_url(make: Make) -> None:
    provider = make(webhook_verifier="token", webhook_token_param="key", webhook_signature_header="X-Token",
                    webhook_id_field="ref", webhook_status_field="stat", webhook_time_field=None)
    body = b"ref=" + MID.encode() + b"&stat=DELIVERED&msisdn=0812345678"
    form = {"content-type": "application/x-www-form-urlencoded"}
    url = "https://growth.jaikod.test/webhooks/http_sms?key=dlr-secret"
    [event] = provider.parse_webhook({**form, "x-growth-request-urls": url}, body)
    assert (event.message_id, event.status, event.event_id) == (MID, "delivered", f"{MID}:delivered")
    assert len(provider.parse_webhook({**form, "X-Token": "dlr-secret"}, body)) == 1
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.parse_webhook({**form, "x-growth-request-urls": url.replace("dlr-secret", "guess")}, body)


def test_a_report_verified_by_basic_auth(make: Make) -> None:
    provider = make(webhook_verifier="basic", webhook_username="gateway")
    body = json.dumps({"reference": MID, "status": "undelivered", "id": "dlr-9"}).encode()
    good = "Basic " + base64.b64encode(b"gateway:dlr-secret").decode()
    [event] = make(webhook_verifier="basic", webhook_username="gateway", webhook_event_id_field="id") \
        .parse_webhook({"Authorization": good}, body)
    assert (event.status, event.event_id) == ("failed", "dlr-9")
    for bad in ("Basic " + base64.b64encode(b"gateway:nope").decode(), "Bearer dlr-secret", "Basic !!!"):
        with pytest.raises(WebhookRejected):
            provider.parse_webhook({"Authorization": bad}, body)


def reference_in_header(config: HttpSmsConfig) -> Callable[[Any, bytes], None]:
    """A custom verifier, named in the config as ``module:function``."""
    def verify(headers: Any, body: bytes) -> None:
        if headers.get("X-Gateway") != "thaibulksms":
            raise WebhookRejected("not from the gateway")
    return verify


def test_a_pluggable_verifier(make: Make) -> None:
    provider = make(webhook_verifier="tests.integration.channels.test_http_sms:reference_in_header")
    body = json.dumps({"reference": MID, "status": "delivered"}).encode()
    assert len(provider.parse_webhook({"X-Gateway": "thaibulksms"}, body)) == 1
    with pytest.raises(WebhookRejected, match="not from the gateway"):
        provider.parse_webhook({}, body)

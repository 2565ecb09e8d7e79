"""One suite, every channel provider: the same checks against each, each on its real local double.

Per provider, a harness says how to make its double accept, refuse (HTTP 4xx, SMTP 5xx) or fail once
(HTTP 5xx, SMTP 4xx), which idempotency key each accepted send carried, and what a forged webhook looks like.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from growthengine.channels.providers.audience import hash_email, key_number
from growthengine.channels.providers.base import REQUEST_URL_HEADER, OutboundMessage, Provider, WebhookRejected
from growthengine.channels.providers.facebook_audience import FacebookAudienceProvider
from growthengine.channels.providers.fcm import FcmProvider
from growthengine.channels.providers.google_customer_match import GoogleCustomerMatchProvider
from growthengine.channels.providers.http_sms import HttpSmsProvider
from growthengine.channels.providers.sendgrid import SendGridProvider
from growthengine.channels.providers.ses import SesConfig, SesProvider
from growthengine.channels.providers.smtp import SmtpProvider
from growthengine.channels.providers.twilio import TwilioProvider, twilio_signature
from growthengine.channels.registry import FACTORIES
from tests.integration.channels.doubles import (
    CERT_PATH,
    SmtpDouble,
    TokenEndpoint,
    hmac_hex,
    run_smtp,
    sendgrid_keys,
    sendgrid_sign,
    service_account,
    ses_notification,
    sign_sns,
    sns_cert,
)

MID = "msg_c0ffee00c0ffee00c0ffee00"
REFUSAL = "no such recipient"
FAST = {"attempts": 3, "backoff_s": 0.0, "timeout_s": 5.0}


@dataclass
class Doubles:
    server: HTTPServer
    smtp: SmtpDouble
    http: httpx.Client


@dataclass
class Harness:
    provider: Provider
    message: OutboundMessage
    accept: Callable[[], None]
    refuse: Callable[[], None]
    fail_once: Callable[[], None]
    accepted_keys: Callable[[], list[str]]
    expected_key: str
    forged_webhook: tuple[dict[str, str], bytes]


def message(channel: str, to: str, **extra: Any) -> OutboundMessage:
    return OutboundMessage(id=MID, user_id="u-1", channel=channel, kind="marketing", to=to, title="ราคาลงแล้ว! 🔥",
                           subject="ลดให้พิเศษ 5% เฉพาะคุณ 🏷️", body="กล้อง Olympus เหลือเพียง ฿450",
                           html="<p>฿450</p>", unsubscribe_url="https://jaikod.test/u/unsub", **extra)


def http_harness(d: Doubles, provider: Provider, msg: OutboundMessage, path: str, ok: Callable[[], Response],
                 refusal: Response, key: Callable[[Request], str], forged: tuple[dict[str, str], bytes],
                 expected_key: str = MID, method: str = "POST") -> Harness:
    def accept() -> None:
        d.server.expect_request(path, method=method).respond_with_handler(lambda _r: ok())

    def accepted() -> list[str]:
        return [key(r) for r, resp in d.server.log if r.path == path and resp.status_code < 300]

    def refuse() -> None:
        d.server.expect_request(path, method=method).respond_with_response(refusal)

    def fail_once() -> None:
        d.server.expect_oneshot_request(path, method=method).respond_with_data("down", 503)
        accept()

    return Harness(provider, msg, accept, refuse, fail_once, accepted, expected_key, forged)


def json_response(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


def fcm(d: Doubles) -> Harness:
    info = service_account(TokenEndpoint().install(d.server))
    provider = FcmProvider.from_settings({"service_account": info, "base_url": d.server.url_for(""), **FAST},
                                         client=d.http, sleep=lambda _s: None)
    return http_harness(
        d, provider, message("push", "fcm-token-abc", image_url="https://img.jaikod.test/1.jpg"),
        "/v1/projects/jaikod-test/messages:send", lambda: json_response({"name": "projects/p/messages/1"}),
        json_response({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": REFUSAL}}, 400),
        lambda r: r.get_json()["message"]["data"]["message_id"], ({}, b"{}"))


def ses(d: Doubles) -> Harness:
    d.server.expect_request(CERT_PATH).respond_with_data(sns_cert()[1])
    config = SesConfig.from_settings({"region": "ap-southeast-1", "from_address": "deals@jaikod.test",
                                      "endpoint_url": d.server.url_for(""), "access_key_id": "AKIATEST",
                                      "secret_access_key": "s", "topic_arns": [ses_notification({})["TopicArn"]],
                                      **FAST})
    provider = SesProvider(config, http=d.http, url_allowed=lambda u: u.startswith(d.server.url_for("/")),
                           sleep=lambda _s: None)
    signed = sign_sns(ses_notification({"eventType": "Delivery", "mail": {"tags": {"message_id": [MID]}},
                                        "delivery": {"timestamp": "2026-01-05T02:00:00Z"}}),
                      d.server.url_for(CERT_PATH))
    signed["Message"] = signed["Message"].replace(MID, "msg_forged")
    return http_harness(
        d, provider, message("email", "somchai@example.co.th"), "/v2/email/outbound-emails",
        lambda: json_response({"MessageId": "ses-1"}),
        json_response({"message": REFUSAL}, 400, **{"x-amzn-ErrorType": "MessageRejected:"}),
        lambda r: {t["Name"]: t["Value"] for t in r.get_json()["EmailTags"]}["message_id"],
        ({}, json.dumps(signed).encode()))


def sendgrid(d: Doubles) -> Harness:
    provider = SendGridProvider.from_settings({"api_key": "SG.k", "from_address": "deals@jaikod.test",
                                               "base_url": d.server.url_for(""),
                                               "webhook_public_key": sendgrid_keys()[1], **FAST},
                                              client=d.http, sleep=lambda _s: None)
    body = json.dumps([{"event": "delivered", "message_id": MID, "timestamp": 1767578400}]).encode()
    return http_harness(
        d, provider, message("email", "nida@example.co.th"), "/v3/mail/send",
        lambda: Response("", status=202, headers={"X-Message-Id": "sg-1"}),
        json_response({"errors": [{"message": REFUSAL}]}, 400),
        lambda r: r.get_json()["personalizations"][0]["custom_args"]["message_id"],
        (sendgrid_sign(body, "1767578400", ec.generate_private_key(ec.SECP256R1())), body))


def twilio(d: Doubles) -> Harness:
    sid = "AC00000000000000000000000000000000"
    provider = TwilioProvider.from_settings({"account_sid": sid, "auth_token": "tok", "from_number": "+6625550100",
                                             "base_url": d.server.url_for(""),
                                             "status_callback_url": "https://growth.jaikod.test/hooks/twilio", **FAST},
                                            client=d.http, sleep=lambda _s: None)
    url = "https://growth.jaikod.test/hooks/twilio?message_id=" + MID
    params = [("MessageSid", "SM1"), ("MessageStatus", "delivered")]
    forged = ({REQUEST_URL_HEADER: url, "X-Twilio-Signature": twilio_signature("not-the-token", url, params)},
              urlencode(params).encode())
    return http_harness(
        d, provider, message("sms", "+66812345678"), f"/2010-04-01/Accounts/{sid}/Messages.json",
        lambda: json_response({"sid": "SM1"}, 201), json_response({"code": 21211, "message": REFUSAL}, 400),
        lambda r: parse_qs(urlsplit(r.form["StatusCallback"]).query)["message_id"][0], forged)


def http_sms(d: Doubles) -> Harness:
    provider = HttpSmsProvider.from_settings({"url": d.server.url_for("/sms"), "webhook_secret": "s", **FAST},
                                             client=d.http, sleep=lambda _s: None)
    body = json.dumps({"reference": MID, "status": "delivered"}).encode()
    return http_harness(
        d, provider, message("sms", "+66812345678"), "/sms", lambda: json_response({"id": "gw-1"}),
        json_response({"error": REFUSAL}, 422), lambda r: r.headers["Idempotency-Key"],
        ({"X-Signature": hmac_hex("not-the-secret", body)}, body))


def facebook_audience(d: Doubles) -> Harness:
    provider = FacebookAudienceProvider.from_settings(
        {"access_token": "EAAB", "audience_id": "238", "base_url": d.server.url_for(""), **FAST},
        client=d.http, sleep=lambda _s: None)
    return http_harness(
        d, provider, message("ads", "nida@example.co.th"), "/v27.0/238/users",
        lambda: json_response({"num_received": 1, "num_invalid_entries": 0, "session_id": "1"}),
        json_response({"error": {"message": REFUSAL, "code": 100}}, 400),
        lambda r: str(json.loads(r.form["session"])["session_id"]), ({}, b""), expected_key=str(key_number(MID)))


def google_customer_match(d: Doubles) -> Harness:
    provider = GoogleCustomerMatchProvider.from_settings(
        {"customer_id": "1234567890", "user_list_id": "777", "access_token": "ya29",
         "customer_match_terms_accepted": True, "base_url": d.server.url_for(""), **FAST},
        client=d.http, sleep=lambda _s: None)
    return http_harness(
        d, provider, message("ads", "nida@example.co.th"), "/v1/audienceMembers:ingest",
        lambda: json_response({"requestId": "req-1"}),
        json_response({"error": {"code": 400, "message": REFUSAL, "status": "INVALID_ARGUMENT"}}, 400),
        lambda r: r.get_json()["audienceMembers"][0]["userData"]["userIdentifiers"][0]["emailAddress"], ({}, b""),
        expected_key=hash_email("nida@example.co.th"))


def smtp(d: Doubles) -> Harness:
    handler = d.smtp.handler
    provider = SmtpProvider.from_settings({"host": "127.0.0.1", "port": d.smtp.port, "from_address": "d@jaikod.test",
                                           "security": "none", **FAST}, sleep=lambda _s: None)  # a local relay
    return Harness(
        provider, message("email", "somchai@example.co.th"), accept=lambda: None,
        refuse=lambda: handler.rcpt_replies.append(f"550 5.1.1 {REFUSAL}"),
        fail_once=lambda: handler.data_replies.append("451 4.3.0 try again later"),
        accepted_keys=lambda: [str(mail["X-Growth-Message-Id"]) for _, mail in handler.received],
        expected_key=MID, forged_webhook=({}, b""))


HARNESSES: dict[str, Callable[[Doubles], Harness]] = {
    "fcm": fcm, "ses": ses, "sendgrid": sendgrid, "smtp": smtp, "twilio": twilio, "http_sms": http_sms,
    "facebook_audience": facebook_audience, "google_customer_match": google_customer_match,
}


@pytest.fixture(scope="module")
def doubles() -> Iterator[Doubles]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        with run_smtp() as smtp_double, httpx.Client() as http:
            yield Doubles(server, smtp_double, http)
    finally:
        server.stop()


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, doubles: Doubles) -> Iterator[Harness]:
    doubles.server.clear()
    doubles.smtp.handler.reset()
    yield HARNESSES[request.param](doubles)
    doubles.server.clear()
    doubles.smtp.handler.reset()


def test_every_provider_is_registered() -> None:
    assert set(HARNESSES) <= set(FACTORIES)


def test_it_is_a_provider_registered_under_its_name(harness: Harness) -> None:
    assert isinstance(harness.provider, Provider)
    assert harness.provider.name in FACTORIES
    assert harness.provider.channel == harness.message.channel


def test_a_send_that_is_accepted(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.accept()
    with caplog.at_level(logging.DEBUG, logger="growthengine"):
        delivery = harness.provider.send(harness.message)
    assert (delivery.status, delivery.provider, delivery.reason) == ("sent", harness.provider.name, None)
    assert delivery.provider_id
    assert harness.accepted_keys() == [harness.expected_key]
    assert harness.message.to not in caplog.text


def test_a_refusal_is_permanent_with_the_reason(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    harness.refuse()
    with caplog.at_level(logging.DEBUG, logger="growthengine"):
        delivery = harness.provider.send(harness.message)
    assert (delivery.status, delivery.permanent) == ("failed", True)
    assert delivery.reason is not None and REFUSAL in delivery.reason
    assert harness.accepted_keys() == []
    assert harness.message.to not in caplog.text


def test_a_transient_failure_is_retried_and_sent_once(harness: Harness) -> None:
    harness.fail_once()
    delivery = harness.provider.send(harness.message)
    assert delivery.status == "sent"
    assert harness.accepted_keys() == [harness.expected_key]


def test_a_forged_webhook_is_rejected(harness: Harness) -> None:
    with pytest.raises(WebhookRejected):
        harness.provider.parse_webhook(*harness.forged_webhook)

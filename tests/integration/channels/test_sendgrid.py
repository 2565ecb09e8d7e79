"""SendGrid v3 mail send against a local double, and its Event Webhook signed with a real ECDSA P-256 key."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pytest_httpserver import HTTPServer
from werkzeug import Response

from growthengine.channels.providers.base import CredentialsError, OutboundMessage, WebhookRejected
from growthengine.channels.providers.sendgrid import SendGridConfig, SendGridProvider
from tests.integration.channels.doubles import sendgrid_keys, sendgrid_sign

SEND = "/v3/mail/send"
MID = "msg_aaaabbbbccccddddeeeeffff"
NOW = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)

Make = Callable[..., SendGridProvider]


@pytest.fixture
def make(server: HTTPServer, sleeps: list[float], http: httpx.Client) -> Make:
    def build(**settings: Any) -> SendGridProvider:
        config = SendGridConfig.from_settings({
            "api_key": "SG.test-key", "from_address": "deals@jaikod.test", "from_name": "JaiKod",
            "base_url": server.url_for(""), "webhook_public_key": sendgrid_keys()[1], "backoff_s": 0.5,
            "unsubscribe_mailto": "unsubscribe@jaikod.test", **settings})
        return SendGridProvider(config, client=http, sleep=sleeps.append, system_now=lambda: NOW)

    return build


def email(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "id": MID, "user_id": "u-7", "channel": "email", "kind": "marketing", "to": "nida@example.co.th",
        "subject": "3 เคล็ดลับถ่ายรูปให้ขายออกไว 📸", "body": "อ่านคู่มือ", "html": "<h1>อ่านคู่มือ</h1>",
        "unsubscribe_url": "https://jaikod.test/u/unsub?m=" + MID,
    }
    fields.update(overrides)
    return OutboundMessage(**fields)


def test_the_mail_send_body(server: HTTPServer, make: Make) -> None:
    server.expect_request(SEND, method="POST", headers={"Authorization": "Bearer SG.test-key"}) \
        .respond_with_data("", status=202, headers={"X-Message-Id": "sg-abc123"})
    delivery = make(asm_group_id=42).send(email())
    assert (delivery.status, delivery.provider_id) == ("sent", "sg-abc123")
    body = server.log[-1][0].get_json()
    assert body["personalizations"] == [{"to": [{"email": "nida@example.co.th"}], "custom_args": {"message_id": MID}}]
    assert body["from"] == {"email": "deals@jaikod.test", "name": "JaiKod"}
    assert body["subject"] == "3 เคล็ดลับถ่ายรูปให้ขายออกไว 📸"
    assert body["content"] == [{"type": "text/plain", "value": "อ่านคู่มือ"},
                               {"type": "text/html", "value": "<h1>อ่านคู่มือ</h1>"}]
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["headers"]["List-Unsubscribe"].endswith(f"<https://jaikod.test/u/unsub?m={MID}>")
    assert body["headers"]["X-Growth-Message-Id"] == MID
    assert body["asm"] == {"group_id": 42}
    assert body["categories"] == ["marketing"]


def test_transactional_mail_skips_unsubscribe(server: HTTPServer, make: Make) -> None:
    server.expect_request(SEND).respond_with_data("", status=202)
    make(asm_group_id=42).send(email(kind="transactional"))
    body = server.log[-1][0].get_json()
    assert body["headers"] == {"X-Growth-Message-Id": MID}
    assert "asm" not in body


def test_a_bad_request_is_permanent_with_sendgrids_reason(server: HTTPServer, make: Make) -> None:
    server.expect_request(SEND).respond_with_json(
        {"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email"}]},
        status=400)
    delivery = make().send(email())
    assert (delivery.status, delivery.permanent, delivery.reason) == (
        "failed", True, "HTTP 400: Does not contain a valid address.")


def test_a_5xx_is_retried(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    server.expect_oneshot_request(SEND).respond_with_data("busy", status=503)
    server.expect_request(SEND).respond_with_data("", status=202, headers={"X-Message-Id": "sg-2"})
    assert make().send(email()).provider_id == "sg-2"
    assert sleeps == [0.5]


def signed(events: list[dict[str, Any]], timestamp: str = "1767578400",
           key: ec.EllipticCurvePrivateKey | None = None) -> tuple[dict[str, str], bytes]:
    body = json.dumps(events).encode()
    return sendgrid_sign(body, timestamp, key), body


def test_an_empty_subject_is_never_sent(server: HTTPServer, make: Make) -> None:
    server.expect_request(SEND, method="POST").respond_with_data("", status=202)
    provider = make()
    provider.send(email(subject=None, title=None, body="  ราคาลดแล้ว 450 บาท\nดูเลย"))
    assert server.log[-1][0].get_json()["subject"] == "ราคาลดแล้ว 450 บาท"
    provider.send(email(subject="", title="", body=""))
    assert server.log[-1][0].get_json()["subject"] == "JaiKod"


def test_a_429_waits_for_x_ratelimit_reset(server: HTTPServer, make: Make, sleeps: list[float]) -> None:
    # SendGrid's documented 429: no Retry-After, the window's end as a Unix time in X-RateLimit-Reset.
    reset = str(int(NOW.timestamp()) + 4)
    server.expect_oneshot_request(SEND).respond_with_response(Response(
        json.dumps({"errors": [{"field": None, "message": "too many requests"}]}), status=429,
        headers={"X-RateLimit-Limit": "150", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset},
        content_type="application/json"))
    server.expect_request(SEND).respond_with_data("", status=202, headers={"X-Message-Id": "sg-2"})
    assert make().send(email()).provider_id == "sg-2"
    assert sleeps == [4.0]
    server.clear()
    server.expect_request(SEND).respond_with_response(Response(
        "{}", status=429, headers={"X-RateLimit-Reset": str(int(NOW.timestamp()) + 3600)}))
    later = make().send(email())
    assert (later.status, later.permanent) == ("failed", False)
    assert later.reason is not None and "retry after 3600s" in later.reason


def test_events_map_to_our_statuses(make: Make) -> None:
    base = {"email": "nida@example.co.th", "timestamp": 1767578400, "sg_event_id": "e", "sg_message_id": "sg.1",
            "message_id": MID}
    events = make().parse_webhook(*signed([
        dict(base, event="processed"),
        dict(base, event="delivered", response="250 OK"),
        dict(base, event="open"),
        dict(base, event="click", url="https://jaikod.test/l/L1"),
        dict(base, event="bounce", type="bounce", status="5.1.1", reason="550 5.1.1 nida@example.co.th unknown"),
        dict(base, event="dropped", reason="Bounced Address"),
        dict(base, event="spamreport"),
        dict(base, event="group_unsubscribe", asm_group_id=42),
        dict(base, event="deferred"),
        {"event": "delivered", "timestamp": 1767578400, "email": "x@example.com"},  # not sent by us
    ]))
    assert [(e.status, e.reason) for e in events] == [
        ("delivered", None), ("opened", None), ("clicked", None), ("bounced", "bounce/5.1.1"),
        ("failed", "Bounced Address"), ("complained", None), ("unsubscribed", None)]
    assert {e.message_id for e in events} == {MID}
    assert events[0].at == dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)


def test_unsigned_or_wrongly_signed_events_are_rejected(make: Make) -> None:
    provider = make()
    headers, body = signed([{"event": "delivered", "message_id": MID, "timestamp": 1767578400}])
    with pytest.raises(WebhookRejected, match="not signed"):
        provider.parse_webhook({}, body)
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.parse_webhook(headers, body.replace(MID.encode(), b"msg_forged"))
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.parse_webhook(*signed([{"event": "open", "message_id": MID, "timestamp": 1}], key=other))
    tampered_time = dict(headers, **{"X-Twilio-Email-Event-Webhook-Timestamp": "1767578401"})
    with pytest.raises(WebhookRejected, match="does not match"):
        provider.parse_webhook(tampered_time, body)


def test_a_signature_more_than_five_minutes_from_system_time_is_refused(make: Make) -> None:
    event = [{"event": "open", "message_id": MID, "timestamp": 1767578000, "sg_event_id": "hqFbp3HH9WxIM0R2-x2M1Q=="}]
    provider = make()
    [opened] = provider.parse_webhook(*signed(event, timestamp="1767578100"))  # 5 minutes before now, to the second
    assert (opened.event_id, opened.signed_at) == ("hqFbp3HH9WxIM0R2-x2M1Q==", NOW - dt.timedelta(minutes=5))
    for stale in ("1767578099", "1767578701", "946684800"):  # 5 min 1 s early or late; the year 2000
        with pytest.raises(WebhookRejected, match="300s from now"):
            provider.parse_webhook(*signed(event, timestamp=stale))
    with pytest.raises(WebhookRejected, match="not a number"):
        provider.parse_webhook(*signed(event, timestamp="soon"))
    assert len(make(webhook_max_age_s=3600).parse_webhook(*signed(event, timestamp="1767575000"))) == 1


def test_the_window_is_system_time_not_the_engine_clock(server: HTTPServer, http: httpx.Client) -> None:
    config = SendGridConfig.from_settings({"api_key": "k", "from_address": "a@jaikod.test",
                                           "webhook_public_key": sendgrid_keys()[1]})
    real = SendGridProvider(config, client=http)  # no clock given: the real one, whatever the engine runs on
    now = str(int(dt.datetime.now(dt.UTC).timestamp()))
    assert len(real.parse_webhook(*signed([{"event": "open", "message_id": MID, "timestamp": 1}], now))) == 1
    with pytest.raises(WebhookRejected):
        real.parse_webhook(*signed([{"event": "open", "message_id": MID, "timestamp": 1}]))  # NOW: months ago


def test_without_a_key_nothing_is_trusted(make: Make) -> None:
    with pytest.raises(WebhookRejected, match="webhook_public_key"):
        make(webhook_public_key=None).parse_webhook(*signed([]))


def test_a_bad_public_key_is_a_config_error() -> None:
    with pytest.raises(CredentialsError, match="webhook_public_key"):
        SendGridConfig.from_settings({"api_key": "k", "from_address": "a@b.c", "webhook_public_key": "bm9wZQ=="})


def test_check_credentials(server: HTTPServer, make: Make) -> None:
    server.expect_oneshot_request("/v3/scopes").respond_with_json({"scopes": ["mail.send", "stats.read"]})
    make().check_credentials()
    server.expect_oneshot_request("/v3/scopes").respond_with_json({"scopes": ["stats.read"]})
    with pytest.raises(CredentialsError, match=r"mail\.send"):
        make().check_credentials()
    server.expect_oneshot_request("/v3/scopes").respond_with_json({"errors": [{"message": "bad key"}]}, status=401)
    with pytest.raises(CredentialsError, match="refused"):
        make().check_credentials()

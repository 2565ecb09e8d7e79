"""Provider webhooks through ``POST /webhooks/{provider}``, as an attacker and a proxy would send them: a replayed
request and a stale one are refused, a late or replayed failure never moves a message backwards, and Twilio's
signature verifies behind a TLS-terminating proxy (public URL, trusted forwarded headers). On both databases."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from pytest_httpserver import HTTPServer

from growthengine.bootstrap import build_engine
from growthengine.channels.providers.twilio import twilio_signature
from growthengine.clock import ManualClock
from growthengine.domain.messages import Message
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.integration.channels.doubles import sendgrid_keys, sendgrid_sign
from tests.scenarios.story import Story
from tests.unit.api_client import api_client

pytestmark = pytest.mark.anyio

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"


def engine_with(db_url: str, tmp_path: Path, clock: ManualClock, httpserver: HTTPServer, **settings: Any) -> Engine:
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_data(
        "", status=202, headers={"X-Message-Id": "sg-1"})
    values: dict[str, Any] = {
        "db_url": db_url, "data_dir": tmp_path,
        "channel_providers": {"email": "sendgrid", "sms": "twilio"},
        "provider_settings": {
            "sendgrid": {"api_key": "SG.k", "from_address": "deals@jaikod.test", "base_url": httpserver.url_for(""),
                         "webhook_public_key": sendgrid_keys()[1]},
            "twilio": {"account_sid": TWILIO_SID, "auth_token": "tw-secret", "from_number": "+6625550100",
                       "base_url": httpserver.url_for("")}},
        **settings}
    return build_engine(Settings(**values), clock=clock)


@pytest.fixture
def engine(db_url: str, tmp_path: Path, clock: ManualClock, httpserver: HTTPServer) -> Iterator[Engine]:
    built = engine_with(db_url, tmp_path, clock, httpserver, public_url="https://growth.jaikod.test")
    try:
        yield built
    finally:
        built.close()


def an_email(engine: Engine, clock: ManualClock) -> Message:
    story = Story(engine, clock)
    story.identify("s1", email="s1@example.test", consent={"email": True}, is_seller=True)
    story.track("s1", "seller_registered")
    story.advance(days=3)
    [email] = engine.messages(user_id="s1", channel="email")
    assert email.status == "sent"
    return email


def sendgrid_request(message_id: str, *events: tuple[str, str], signed: dt.datetime | None = None,
                     ) -> tuple[bytes, dict[str, str]]:
    """SendGrid's documented batch: a JSON array of events, each with its own ``sg_event_id``, signed now."""
    body = json.dumps([{"email": "s1@example.test", "timestamp": 1767578400, "event": kind,
                        "sg_event_id": event_id, "sg_message_id": "sg-1.filter0001.16648.5515E0B88.0",
                        "message_id": message_id, **({"type": "bounce", "status": "5.1.1"} if kind == "bounce" else {})}
                       for kind, event_id in events]).encode()
    stamp = str(int((signed or dt.datetime.now(dt.UTC)).timestamp()))
    return body, sendgrid_sign(body, stamp)


async def test_a_replayed_sendgrid_request_is_refused(engine: Engine, clock: ManualClock) -> None:
    email = an_email(engine, clock)
    body, headers = sendgrid_request(email.id, ("delivered", "dlv-1"), ("open", "opn-1"))
    async with api_client(engine) as client:
        first = await client.post("/webhooks/sendgrid", content=body, headers=headers)
        assert first.status_code == 200 and first.json() == {"applied": 2}
        again = await client.post("/webhooks/sendgrid", content=body, headers=headers)
        assert again.status_code == 409 and again.json()["error"]["code"] == "webhook_replayed"
        # Re-signed now, the same events are still the same events.
        body2, headers2 = sendgrid_request(email.id, ("open", "opn-1"))
        assert (await client.post("/webhooks/sendgrid", content=body2, headers=headers2)).status_code == 409
        # A batch mixing old and new events applies the new ones only.
        body3, headers3 = sendgrid_request(email.id, ("open", "opn-1"), ("click", "clk-1"))
        mixed = await client.post("/webhooks/sendgrid", content=body3, headers=headers3)
        assert mixed.status_code == 200 and mixed.json() == {"applied": 1}
    assert engine.messages(user_id="s1", channel="email")[0].status == "clicked"


async def test_an_old_signature_is_refused_whatever_the_business_clock_says(engine: Engine, clock: ManualClock,
                                                                            ) -> None:
    email = an_email(engine, clock)
    async with api_client(engine) as client:
        for signed in (dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6),
                       clock.now()):  # the manual clock is not system time
            body, headers = sendgrid_request(email.id, ("bounce", f"bnc-{signed.year}"), signed=signed)
            refused = await client.post("/webhooks/sendgrid", content=body, headers=headers)
            assert refused.status_code == 401, refused.text
            assert "300s from now" in refused.json()["error"]["message"]
    assert engine.messages(user_id="s1", channel="email")[0].status == "sent"
    assert engine.webhooks_rejected == {"sendgrid": 3}


async def test_a_late_bounce_never_turns_a_clicked_message_into_failed(engine: Engine, clock: ManualClock) -> None:
    email = an_email(engine, clock)
    async with api_client(engine) as client:
        body, headers = sendgrid_request(email.id, ("delivered", "d-1"), ("click", "c-1"))
        assert (await client.post("/webhooks/sendgrid", content=body, headers=headers)).json() == {"applied": 2}
        body, headers = sendgrid_request(email.id, ("bounce", "b-1"), ("delivered", "d-2"), ("open", "o-1"))
        late = await client.post("/webhooks/sendgrid", content=body, headers=headers)
        assert late.status_code == 200 and late.json() == {"applied": 0}
    [after] = engine.messages(user_id="s1", channel="email")
    assert (after.status, after.reason) == ("clicked", None)


async def test_a_bounce_fails_a_delivered_message_and_an_open_proves_it_wrong(engine: Engine,
                                                                              clock: ManualClock) -> None:
    email = an_email(engine, clock)
    async with api_client(engine) as client:
        body, headers = sendgrid_request(email.id, ("delivered", "d-1"), ("bounce", "b-1"))
        assert (await client.post("/webhooks/sendgrid", content=body, headers=headers)).json() == {"applied": 2}
        assert engine.messages(user_id="s1", channel="email")[0].status == "failed"
        body, headers = sendgrid_request(email.id, ("delivered", "d-2"))
        assert (await client.post("/webhooks/sendgrid", content=body, headers=headers)).json() == {"applied": 0}
        body, headers = sendgrid_request(email.id, ("open", "o-1"))
        assert (await client.post("/webhooks/sendgrid", content=body, headers=headers)).json() == {"applied": 1}
    [after] = engine.messages(user_id="s1", channel="email")
    assert (after.status, after.reason) == ("opened", None)


def twilio_callback(url: str, status: str = "delivered", **extra: str) -> tuple[bytes, str]:
    params = [("AccountSid", TWILIO_SID), ("ApiVersion", "2010-04-01"), ("MessageSid", "SM0042"),
              ("MessageStatus", status), ("SmsSid", "SM0042"), ("SmsStatus", status), ("To", "+66812345678"),
              *extra.items()]
    return urlencode(params).encode(), twilio_signature("tw-secret", url, params)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_twilio_behind_a_tls_proxy_verifies_against_the_public_url(engine: Engine) -> None:
    path = "/webhooks/twilio?message_id=msg_unknown"
    body, signature = twilio_callback("https://growth.jaikod.test" + path)
    async with api_client(engine) as client:  # the engine sees http://testserver/...
        ok = await client.post(path, content=body, headers={**FORM, "X-Twilio-Signature": signature})
        assert ok.status_code == 200 and ok.json() == {"applied": 0}  # genuine; the message is not ours
        replay = await client.post(path, content=body, headers={**FORM, "X-Twilio-Signature": signature})
        assert replay.status_code == 409
        body, forged = twilio_callback("https://attacker.example" + path, status="undelivered")
        refused = await client.post(path, content=body, headers={**FORM, "X-Twilio-Signature": forged})
        assert refused.status_code == 401


@pytest.mark.parametrize(("allow", "status"), [("127.0.0.1", 200), ("10.9.9.9", 401), ("*", 200)])
async def test_twilio_behind_a_trusted_proxy_uses_its_forwarded_headers(
        db_url: str, tmp_path: Path, clock: ManualClock, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch,
        allow: str, status: int) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", allow)  # the proxies uvicorn trusts, read the same way
    engine = engine_with(db_url, tmp_path, clock, httpserver)  # no public URL set: the served address
    path = "/webhooks/twilio?message_id=msg_unknown"
    body, signature = twilio_callback("https://sms.jaikod.test" + path)
    headers = {**FORM, "X-Twilio-Signature": signature, "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "sms.jaikod.test"}
    try:
        async with api_client(engine) as client:  # httpx's in-process transport is a peer at 127.0.0.1
            assert (await client.post(path, content=body, headers=headers)).status_code == status
    finally:
        engine.close()


def test_remembered_event_ids_expire(db_url: str) -> None:
    from growthengine.storage.unit_of_work import Store
    from growthengine.storage.webhook_events import WebhookEventStore

    store = Store.open(db_url)
    try:
        with store.transaction() as tx:
            seen = WebhookEventStore(tx.conn, tx.dialect)
            assert seen.remember("sendgrid", "e-1", expires_us=2_000) is True
            assert seen.remember("sendgrid", "e-1", expires_us=2_000) is False  # a replay
            assert seen.remember("ses", "e-1", expires_us=2_000) is True  # ids are per provider
        with store.transaction() as tx:
            seen = WebhookEventStore(tx.conn, tx.dialect)
            assert seen.purge(now_us=1_999) == 0
            assert seen.purge(now_us=2_001) == 2
            assert seen.remember("sendgrid", "e-1", expires_us=9_000) is True
    finally:
        store.close()

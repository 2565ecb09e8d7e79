"""A flow's email goes out through SendGrid (a local double), and SendGrid's signed event webhook comes back
through ``POST /webhooks/sendgrid`` onto the send ledger; a forged webhook is refused and counted."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.settings import Settings
from tests.integration.channels.doubles import sendgrid_keys, sendgrid_sign
from tests.scenarios.story import Story
from tests.unit.api_client import api_client

pytestmark = pytest.mark.anyio


async def test_email_via_sendgrid_and_its_webhook(httpserver: HTTPServer, tmp_path: Path, clock: ManualClock) -> None:
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_data(
        "", status=202, headers={"X-Message-Id": "sg-1"})
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'g.db'}", data_dir=tmp_path,
        channel_providers={"email": "sendgrid"},
        provider_settings={"sendgrid": {"api_key": "SG.k", "from_address": "deals@jaikod.test",
                                        "base_url": httpserver.url_for(""),
                                        "webhook_public_key": sendgrid_keys()[1]}},
    )
    engine = build_engine(settings, clock=clock)
    try:
        story = Story(engine, clock)
        story.identify("s1", email="s1@example.test", consent={"email": True}, is_seller=True)
        story.track("s1", "seller_registered")
        story.advance(days=3)
        [email] = engine.messages(user_id="s1", channel="email")
        assert (email.status, email.data.get("provider")) == ("sent", "sendgrid")
        sent = json.loads(httpserver.log[0][0].get_data())
        assert sent["personalizations"][0]["custom_args"]["message_id"] == email.id
        body = json.dumps([{"event": "open", "message_id": email.id, "timestamp": 1767578400,
                             "sg_event_id": "hqFbp3HH9WxIM0R2-x2M1Q=="}]).encode()
        signed_now = str(int(dt.datetime.now(dt.UTC).timestamp()))  # the window is system time, not the test clock
        async with api_client(engine) as client:
            ok = await client.post("/webhooks/sendgrid", content=body, headers=sendgrid_sign(body, signed_now))
            assert ok.status_code == 200 and ok.json() == {"applied": 1}
            forged = await client.post("/webhooks/sendgrid", content=body.replace(b"open", b"click"),
                                       headers=sendgrid_sign(body, signed_now))
            assert forged.status_code == 401
            assert (await client.post("/webhooks/nope", content=b"{}")).status_code == 404
        assert engine.messages(user_id="s1", channel="email")[0].status == "opened"
        assert engine.webhooks_rejected == {"sendgrid": 1}
    finally:
        engine.close()

"""Delivery feedback travels through the log: a provider's webhook is answered once the feedback is stored as a
``message_feedback`` command addressed to the message's user, the flows stage moves the message, and the engagement
stage learns from the open (an email opened in a mail client counts for the user's email score, as an app's
``message_opened`` does). On both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock, RealClock
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.integration.channels.doubles import sendgrid_keys
from tests.integration.test_webhooks_through_the_engine import an_email, engine_with, sendgrid_request
from tests.unit.api_client import api_client

pytestmark = pytest.mark.anyio


def feedback_rows(engine: Engine, user_id: str) -> list[tuple[str, str]]:
    with engine.store.read() as tx:
        rows = tx.conn.execute(sa.text(
            "SELECT name, payload FROM events WHERE type = 'command' AND name = 'message_feedback' AND user_id = :u "
            "ORDER BY id"), {"u": user_id})
        return [(r[0], r[1]) for r in rows]


async def test_a_webhook_open_teaches_the_email_score(db_url: str, tmp_path: Path, clock: ManualClock,
                                                      httpserver: HTTPServer) -> None:
    engine = engine_with(db_url, tmp_path, clock, httpserver)
    try:
        email = an_email(engine, clock)
        before = engine.channel_scores("s1")
        assert before is not None
        body, headers = sendgrid_request(email.id, ("delivered", "d-1"), ("open", "o-1"))
        async with api_client(engine) as client:
            answer = await client.post("/webhooks/sendgrid", content=body, headers=headers)
        assert answer.json() == {"applied": 2}
        commands = feedback_rows(engine, "s1")
        assert [name for name, _ in commands] == ["message_feedback", "message_feedback"]
        assert '"status":"opened"' in commands[1][1].replace(" ", "")
        assert engine.messages(user_id="s1", channel="email")[0].status == "opened"
        after = engine.channel_scores("s1")
        assert after is not None and after["email"] > before["email"], (before, after)
        # The feedback is not the user's behaviour: it is neither an event of theirs nor activity.
        async with api_client(engine) as client:
            user = (await client.get("/v1/users/s1")).json()
        assert all(e.get("event") != "message_feedback" for e in user.get("events", []))
    finally:
        engine.close()


async def test_feedback_waits_in_the_log_until_a_worker_applies_it(tmp_path: Path, clock: ManualClock,
                                                                   httpserver: HTTPServer) -> None:
    """On the real clock the API only stores the feedback; the message moves when the pipeline runs, not before."""
    db_url = f"sqlite:///{tmp_path / 'growth.db'}"
    sender = engine_with(db_url, tmp_path, clock, httpserver)
    try:
        email = an_email(sender, clock)
    finally:
        sender.close()
    settings = Settings(db_url=db_url, data_dir=tmp_path, channel_providers={"email": "sendgrid"},
                        provider_settings=sendgrid_settings(httpserver))
    api = build_engine(settings, clock=RealClock())
    try:
        body, headers = sendgrid_request(email.id, ("open", "o-1"))
        async with api_client(api) as client:
            answer = await client.post("/webhooks/sendgrid", content=body, headers=headers)
        assert answer.status_code == 200 and answer.json() == {"applied": 1}
        assert api.messages(user_id="s1", channel="email")[0].status == "sent", "no worker has run yet"
        assert api.pipeline.drain() > 0
        assert api.messages(user_id="s1", channel="email")[0].status == "opened"
        assert api.pipeline.drain() == 0, "applied once"
    finally:
        api.close()


def sendgrid_settings(httpserver: HTTPServer) -> dict[str, dict[str, str]]:
    return {"sendgrid": {"api_key": "SG.k", "from_address": "deals@jaikod.test", "base_url": httpserver.url_for(""),
                         "webhook_public_key": sendgrid_keys()[1]}}

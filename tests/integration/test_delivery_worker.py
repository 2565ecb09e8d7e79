"""Pushes through FCM (a local double), called by the delivery worker after the send ledger commits: a 503 is
retried after a backoff in system time (whatever the test clock says) with the same message id, a dead token fails
the message and is cleared from the profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock, system_seconds
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.scenarios.story import Story
from tests.waiting import wait_until

SEND = "/v1/projects/jaikod-test/messages:send"


def test_fcm_deliveries_after_commit_with_retries_and_dead_tokens(
        httpserver: HTTPServer, tmp_path: Path, clock: ManualClock) -> None:
    calls: list[dict[str, object]] = []
    answers = iter([Response("busy", status=503), Response(json.dumps({"name": "projects/x/messages/1"}))])

    def handler(request: Request) -> Response:
        body = json.loads(request.get_data())
        calls.append(body)
        if body["message"]["token"] == "dead-token":
            return Response(json.dumps({"error": {"code": 404, "status": "NOT_FOUND", "message": "gone", "details": [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
                status=404, content_type="application/json")
        return next(answers)

    httpserver.expect_request(SEND, method="POST").respond_with_handler(handler)
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", data_dir=tmp_path,
                        channel_providers={"push": "fcm"},
                        provider_settings={"fcm": {"project_id": "jaikod-test", "access_token": "token",
                                                   "base_url": httpserver.url_for(""), "attempts": 1}})
    engine = build_engine(settings, clock=clock)
    try:
        story = Story(engine, clock)
        story.identify("alive", push_token="good-token", consent={"push": True})
        story.identify("gone", push_token="dead-token", consent={"push": True})
        for user in ("alive", "gone"):
            story.track(user, "add_to_cart", listing_id="L1", title="Leica", price=100, stock=9)
        failed_by_s = system_seconds()
        story.advance(hours=1)
        by_user = {m.user_id: m for m in engine.messages(channel="push")}
        assert by_user["gone"].status == "failed"
        assert "push_token" not in engine.user_view("gone")["traits"]  # type: ignore[index]
        assert by_user["alive"].status == "scheduled", "the 503 is retried later, not dropped"
        [row] = [r for r in engine_outbox(engine) if r["message_id"] == by_user["alive"].id]
        assert row["state"] == "pending" and row["retry_at_s"] >= failed_by_s + 2, "backoff waits in system time"
        story.advance(minutes=5)  # business time alone does not bring a retry forward: it goes when its wait is over

        def retried() -> bool:
            engine.process_pending()
            return engine.messages(user_id="alive", channel="push")[0].status == "sent"

        wait_until(retried, what="the retry after the 503")
        alive = engine.messages(user_id="alive", channel="push")[0]
        tries = [c for c in calls if c["message"]["token"] == "good-token"]  # type: ignore[index]
        assert len(tries) == 2
        ids = {c["message"]["data"]["message_id"] for c in tries}  # type: ignore[index]
        assert ids == {alive.id}, "the retry carries the same message id"
    finally:
        engine.close()


def engine_outbox(engine: Engine) -> list[dict[str, Any]]:
    with engine.store.read() as tx:
        return tx.messages.outbox(channel="push")

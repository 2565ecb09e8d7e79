"""An erased user leaves a real ads audience (Meta Custom Audience, a local double): the removal is queued in the
erasure's own transaction with the SHA-256 of the email (taken before the email is deleted), under the erasure's
token, and the delivery worker sends it as Meta's documented ``DELETE``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from growthengine.bootstrap import build_engine
from growthengine.channels.providers.audience import hash_email
from growthengine.clock import ManualClock
from growthengine.settings import Settings
from tests.erasure_traces import traces
from tests.scenarios.story import Story

USERS = "/v27.0/23850000000001/users"
EMAIL = "Winback.Erase@Example.test"


def members(request: Request) -> list[str]:
    raw = request.args if request.method == "DELETE" else request.form
    return list(json.loads(raw["payload"])["data"])


def received(request: Request) -> Response:
    return Response(json.dumps({"audience_id": "23850000000001", "session_id": "1", "num_received":
                                len(members(request)), "num_invalid_entries": 0}), content_type="application/json")


def test_an_erased_member_is_removed_from_the_audience_by_hash(httpserver: HTTPServer, tmp_path: Path,
                                                               clock: ManualClock) -> None:
    httpserver.expect_request(USERS, method="POST").respond_with_handler(received)
    httpserver.expect_request(USERS, method="DELETE").respond_with_handler(received)
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'g.db'}", data_dir=tmp_path, channel_providers={"ads": "facebook_audience"},
        provider_settings={"facebook_audience": {"access_token": "EAAB-token", "audience_id": "23850000000001",
                                                 "base_url": httpserver.url_for("")}})
    engine = build_engine(settings, clock=clock)
    try:
        story = Story(engine, clock)
        story.identify("w1", email=EMAIL, consent={"ads": True})
        start = story.now - dt.timedelta(days=12)
        for d in range(12):
            story.track("w1", "app_opened", at=start + dt.timedelta(days=d))
        story.advance(days=32)
        assert [(r.method, members(r)) for r, _ in httpserver.log] == [("POST", [hash_email(EMAIL)])]

        receipt = engine.erase_user("w1", "api")
        assert receipt is not None and receipt.audience_removals == 1
        assert [(r.method, members(r)) for r, _ in httpserver.log][1:] == [("DELETE", [hash_email(EMAIL)])]
        [removal] = engine.messages(user_id=receipt.token, channel="ads", limit=10)[-1:]
        assert (removal.step, removal.status, removal.kind) == ("remove", "sent", "transactional")
        with engine.store.transaction() as tx:
            [row] = [r for r in tx.messages.outbox(channel="ads") if r["message_id"] == removal.id]
            assert row["payload"]["to"] == hash_email(EMAIL) and row["payload"]["user_id"] == receipt.token
            assert traces(tx.conn, ["w1", EMAIL, EMAIL.lower()]) == []
            assert tx.user_models.get_many([receipt.token], "channels") == {}, "a removal teaches no model"
    finally:
        engine.close()

"""A flow's call to an outside coupon engine is a recorded activity: made after the flow's transaction has committed
(no write lock held while the service thinks), its answer recorded, then the run goes on with it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.settings import Settings
from tests.scenarios.story import Story


def test_the_coupon_engine_is_called_outside_any_transaction(httpserver: HTTPServer, tmp_path: Path,
                                                             clock: ManualClock) -> None:
    db = tmp_path / "g.db"
    free_during_call: list[bool] = []

    def coupon(request: Request) -> Response:
        # Could another writer take the database right now? Only if no transaction of the engine is open.
        probe = sqlite3.connect(db, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            free_during_call.append(True)
        except sqlite3.OperationalError:
            free_during_call.append(False)
        finally:
            probe.close()
        return Response('{"code": "SAVE5-REMOTE"}', content_type="application/json")

    httpserver.expect_request("/coupons/generate", method="POST").respond_with_handler(coupon)
    settings = Settings(db_url=f"sqlite:///{db}", data_dir=tmp_path, coupon_engine_url=httpserver.url_for(""))
    engine = build_engine(settings, clock=clock)
    try:
        story = Story(engine, clock)
        story.identify("u1", email="u1@example.test", push_token="t1",
                       consent={"push": True, "email": True, "in_app": True})
        story.track("u1", "add_to_cart", listing_id="L1", title="Leica", price=1000, stock=9)
        story.advance(hours=25)
        emails = engine.messages(user_id="u1", channel="email")
        assert [m.coupon for m in emails] == ["SAVE5-REMOTE"], "the email carries the remote engine's code"
        assert free_during_call == [True], "the call was made once, with no transaction open"
        with engine.store.transaction() as tx:
            runs = tx.runs.active_for_users(["u1"])
            recorded = tx.conn.exec_driver_sql("SELECT run_id, kind, status FROM flow_activities").all()
        assert runs and runs[0].context["coupon"]["code"] == "SAVE5-REMOTE"
        assert [tuple(r) for r in recorded] == [(runs[0].id, "coupon", "done")], "the call and its answer, recorded"
    finally:
        engine.close()

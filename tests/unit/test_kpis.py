"""The KPI definitions of SPEC.md 6 on hand-made messages and events, through the real engine and its store."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from growthengine.analytics.definitions import KpiConfig
from growthengine.analytics.recompute import recompute, stored
from growthengine.analytics.report import benchmarks
from growthengine.analytics.service import kpi_report
from growthengine.analytics.stats import newcombe_difference, wilson
from growthengine.api.app import create_app
from growthengine.api.auth import KeyRing
from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock, to_us
from growthengine.domain.messages import Message
from growthengine.engine import Engine
from growthengine.settings import Settings

T0 = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)  # Monday 09:00 in Bangkok (the clock fixture's start)
DAY = dt.timedelta(days=1)
US = dt.timedelta(microseconds=1)
_ids = itertools.count()


def put(engine: Engine, user: str, status: str, *, channel: str = "push", flow: str = "f1", step: str = "s1",
        variant: str | None = None, reason: str | None = None, at: dt.datetime = T0,
        data: dict[str, Any] | None = None) -> str:
    """A message in the ledger as the flows would leave it (decided at ``at``; sent then if it went out)."""
    mid = f"m{next(_ids)}"
    went_out = status in ("sent", "delivered", "opened", "clicked")
    message = Message(id=mid, user_id=user, flow=flow, step=step, channel=channel, kind="marketing",
                      status=status, scheduled_us=to_us(at), updated_us=to_us(at), body="สวัสดี",
                      reason=reason, sent_us=to_us(at) if went_out else None, variant=variant, data=data or {})
    with engine.store.transaction() as tx:
        tx.messages.add([message])
    engine.process_pending()  # the rollups are computed by the pipeline, per batch (as after any request)
    return mid


def event(engine: Engine, user: str, name: str, at: dt.datetime, **properties: Any) -> None:
    result = engine.ingest([{"type": "track", "userId": user, "event": name, "properties": properties,
                             "timestamp": at.isoformat(), "messageId": f"e{next(_ids)}"}])
    assert result.accepted == 1, result.rejected


def report(engine: Engine, **kwargs: Any) -> dict[str, Any]:
    engine.process_pending()  # ledger writes made straight in a transaction: the pipeline rolls them up
    return kpi_report(engine, start="2026-01-01", end="2026-01-31", **kwargs)


def assert_exact(engine: Engine) -> None:
    engine.process_pending()
    with engine.store.transaction() as tx:
        expected = recompute(tx.conn, tx.kpis.config())
        assert stored(tx.conn) == expected


def test_each_rate_as_the_spec_defines_it(engine: Engine, clock: ManualClock) -> None:
    for i, status in enumerate(["opened", "opened", "opened", "clicked", "sent", "sent", "sent", "delivered"]):
        put(engine, f"p{i}", status)
    put(engine, "p8", "failed", reason="provider_error")
    put(engine, "p9", "suppressed", reason="consent")
    put(engine, "p10", "cancelled", reason="flow_exit")
    for i, status in enumerate(["opened", "sent", "sent", "sent", "sent"]):
        put(engine, f"e{i}", status, channel="email", step="s2")
    clock.set(T0 + 4 * DAY)
    event(engine, "p0", "purchase", T0 + DAY, order_id="o1", amount=100)
    event(engine, "p1", "purchase", T0 + 3 * DAY, order_id="o2")  # the window has just closed
    event(engine, "e0", "purchase", T0 + dt.timedelta(hours=5), order_id="o3")
    event(engine, "p2", "unsubscribed", T0 + DAY, channel="email")  # another channel: not this push's
    event(engine, "e1", "unsubscribed", T0 + DAY, channel="email")
    event(engine, "p3", "unsubscribed", T0 + DAY)  # every channel
    event(engine, "p9", "purchase", T0 + DAY)  # suppressed for consent: neither treated nor control

    overall = report(engine)["overall"]
    assert (overall["decided"], overall["sent"], overall["failed"], overall["suppressed"]) == (16, 13, 1, 1)
    assert overall["cancelled"] == 1 and overall["opened"] == 5 and overall["clicked"] == 1
    assert overall["delivery_rate"] == pytest.approx(13 / 14)
    assert overall["push_open_rate"] == pytest.approx(4 / 8)
    assert overall["email_open_rate"] == pytest.approx(1 / 5)
    assert overall["open_rate"] == pytest.approx(5 / 13)
    assert overall["ctr"] == pytest.approx(1 / 13)
    assert overall["converted"] == 2 and overall["conversion_rate"] == pytest.approx(2 / 13)
    assert overall["unsubscribed"] == 2 and overall["unsubscribe_rate"] == pytest.approx(2 / 13)
    assert overall["uplift"] is None and overall["control_conversion_rate"] is None
    marks = overall["benchmarks"]
    assert marks["delivery_rate"] == {"value": pytest.approx(13 / 14), "target": 0.98, "op": ">", "ok": False}
    assert marks["push_open_rate"]["ok"] is True and marks["email_open_rate"]["ok"] is False
    assert marks["unsubscribe_rate"]["ok"] is False and marks["uplift"]["ok"] is None
    by_channel = {r["channel"]: r for r in report(engine)["by_channel"]}
    assert by_channel["email"]["open_rate"] == pytest.approx(1 / 5)
    assert by_channel["push"]["sent"] == 8
    assert_exact(engine)


def test_the_attribution_window_is_from_the_send_up_to_n_days(engine: Engine, clock: ManualClock) -> None:
    cases = {"before": T0 - US, "at_send": T0, "last_instant": T0 + 3 * DAY - US, "at_end": T0 + 3 * DAY}
    for user in cases:
        put(engine, user, "sent")
    clock.set(T0 + 4 * DAY)
    for user, at in cases.items():
        event(engine, user, "purchase", at)
    rows = {r["flow"]: r for r in report(engine)["by_flow"]}
    assert rows["f1"]["converted"] == 2
    with engine.store.transaction() as tx:
        credited = {r["user_id"] for r in tx.conn.execute(
            sa.text("select user_id from kpi_messages where converted")).mappings()}
    assert credited == {"at_send", "last_instant"}
    assert_exact(engine)


def test_a_purchase_logged_before_the_send_is_recorded_still_counts(engine: Engine, clock: ManualClock) -> None:
    """Events may run a little ahead of the engine's clock; the send's own look-back credits them."""
    event(engine, "u1", "purchase", T0 + dt.timedelta(minutes=4))
    put(engine, "u1", "sent", at=T0 + dt.timedelta(minutes=1))
    assert report(engine)["overall"]["converted"] == 1
    assert_exact(engine)


def test_status_changes_move_counts_between_days(engine: Engine, clock: ManualClock) -> None:
    mid = put(engine, "u1", "scheduled", reason="quiet_hours", at=T0)
    assert [d["day"] for d in report(engine)["by_day"]] == ["2026-01-05"]
    with engine.store.transaction() as tx:
        tx.messages.update(mid, status="sent", sent_us=to_us(T0 + DAY), updated_us=to_us(T0 + DAY))
    days = report(engine)["by_day"]
    assert [(d["day"], d["sent"], d["scheduled"]) for d in days] == [("2026-01-06", 1, 0)]
    with engine.store.transaction() as tx:
        tx.messages.update(mid, status="clicked", updated_us=to_us(T0 + DAY), data={"clicked_us": to_us(T0 + DAY)})
    assert report(engine)["overall"]["opened"] == 1
    assert_exact(engine)


def test_uplift_of_treated_over_the_holdout_with_newcombes_interval(engine: Engine, clock: ManualClock) -> None:
    for i in range(40):
        put(engine, f"t{i}", "sent", variant="a" if i % 2 else "b")
    for i in range(20):
        put(engine, f"c{i}", "suppressed", reason="holdout")
    clock.set(T0 + DAY)
    for i in range(8):
        event(engine, f"t{i}", "purchase", T0 + dt.timedelta(hours=1))
    event(engine, "c0", "purchase", T0 + dt.timedelta(hours=2))
    overall = report(engine)["overall"]
    assert (overall["control"], overall["control_converted"]) == (20, 1)
    assert overall["control_conversion_rate"] == pytest.approx(1 / 20)
    value, low, high = newcombe_difference(8, 40, 1, 20)
    assert overall["uplift"]["value"] == pytest.approx(8 / 40 - 1 / 20) == pytest.approx(value)
    assert (overall["uplift"]["low"], overall["uplift"]["high"]) == (pytest.approx(low), pytest.approx(high))
    assert overall["benchmarks"]["uplift"]["ok"] is True
    variants = {r["variant"]: r for r in report(engine)["by_variant"]}
    assert variants["a"]["sent"] == variants["b"]["sent"] == 20
    assert_exact(engine)


def test_newcombe_and_wilson_match_the_published_examples() -> None:
    # Newcombe (1998), example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339.
    d, low, high = newcombe_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    assert tuple(round(x, 4) for x in wilson(81, 263)) == (0.2553, 0.3662)  # Newcombe (1998) single proportions
    assert wilson(0, 10)[0] == 0.0


def test_benchmarks_compare_each_metric_with_the_spec() -> None:
    row = {"delivery_rate": 0.99, "push_open_rate": 0.04, "email_open_rate": 0.25, "ctr": 0.021,
           "conversion_rate": 0.015, "uplift": {"value": -0.01}, "unsubscribe_rate": 0.004}
    ok = {k: v["ok"] for k, v in benchmarks(row).items()}
    assert ok == {"delivery_rate": True, "push_open_rate": False, "email_open_rate": True, "ctr": True,
                  "conversion_rate": False, "uplift": False, "unsubscribe_rate": True}


def test_a_changed_attribution_window_rebuilds_the_rollups(tmp_path: Path, clock: ManualClock) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    first = build_engine(Settings(db_url=url, data_dir=tmp_path), clock=clock)
    put(first, "u1", "sent")
    clock.set(T0 + 2 * DAY)
    event(first, "u1", "purchase", T0 + dt.timedelta(hours=36))
    assert report(first)["overall"]["converted"] == 1
    first.close()
    second = build_engine(Settings(db_url=url, data_dir=tmp_path, attribution_days=1), clock=clock)
    try:
        body = report(second)
        assert body["attribution_days"] == 1 and body["overall"]["converted"] == 0
        with second.store.transaction() as tx:
            assert tx.kpis.config() == KpiConfig(1, "Asia/Bangkok")
        assert_exact(second)
    finally:
        second.close()


@pytest.fixture
def api(engine: Engine) -> Iterator[httpx.AsyncClient]:
    app = create_app(engine, KeyRing.from_keys(["admin-key"], ["write-key"]), run_workers=False)
    yield httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.anyio
async def test_get_v1_kpis_shape_and_errors(api: httpx.AsyncClient, engine: Engine) -> None:
    put(engine, "u1", "opened", data={"opened_us": to_us(T0)})
    admin = {"Authorization": "Bearer admin-key"}
    body = (await api.get("/v1/kpis", params={"from": "2026-01-05", "to": "2026-01-05T23:00:00+07:00"},
                          headers=admin)).json()
    assert set(body) >= {"from", "to", "overall", "by_flow", "by_step", "by_channel", "by_variant", "by_day"}
    assert (body["from"], body["to"]) == ("2026-01-05", "2026-01-05")
    assert [(r["flow"], r["step"], r["opened"]) for r in body["by_step"]] == [("f1", "s1", 1)]
    for rows in (body["by_flow"], body["by_step"], body["by_channel"], body["by_variant"], body["by_day"]):
        assert all({"delivery_rate", "open_rate", "ctr", "conversion_rate", "unsubscribe_rate", "uplift"} <= set(r)
                   for r in rows)
    assert (await api.get("/v1/kpis", params={"flow": "nope"}, headers=admin)).json()["overall"]["decided"] == 0
    for bad in ({"from": "yesterday"}, {"to": "2026-02-30"}, {"flow": "a\x00b"}, {"from": "2026-01-05T09:00:00"}):
        response = await api.get("/v1/kpis", params=bad, headers=admin)
        assert response.status_code == 400, (bad, response.text)
        assert set(response.json()["error"]) == {"code", "message", "details"}
    # Each day well formed, the two together no report: 422 (a rule between values the schema cannot state).
    for bad in ({"from": "2026-01-06", "to": "2026-01-05"}, {"from": "1990-01-01", "to": "2026-01-01"}):
        response = await api.get("/v1/kpis", params=bad, headers=admin)
        assert response.status_code == 422, (bad, response.text)
        assert set(response.json()["error"]) == {"code", "message", "details"}
    assert (await api.get("/v1/kpis")).status_code == 401
    assert (await api.get("/v1/kpis", headers={"Authorization": "Bearer write-key"})).status_code == 403


def test_a_failing_rollup_keeps_its_cursor_and_the_stages_go_on(engine: Engine, clock: ManualClock) -> None:
    """The rollups run after the stages in a savepoint of their own: when they fail, the stages' work commits, the
    rollups' cursor stays, and the next batch rolls the same message changes up."""
    from growthengine.analytics.rollups import KpiRollups

    tail = engine.pipeline.tails[0]
    assert isinstance(getattr(tail, "rollups", None), KpiRollups)
    healthy = tail.rollups  # type: ignore[attr-defined]

    class Broken(KpiRollups):
        def recompute_users(self, tx: Any, users: Any) -> None:
            raise RuntimeError("the database said no")

    tail.rollups = Broken(healthy.config)  # type: ignore[attr-defined]
    put(engine, "u1", "sent")
    event(engine, "u1", "item_viewed", T0, listing_id="L1", category="cameras", price=10)
    assert [lag.events for lag in engine.pipeline.lag()] == [0] * 5  # every stage has applied the event
    with engine.store.read() as tx:
        assert tx.kpis.breakdown(T0.date(), T0.date()) == []
    tail.rollups = healthy  # type: ignore[attr-defined]
    assert report(engine)["overall"]["sent"] == 1
    assert_exact(engine)

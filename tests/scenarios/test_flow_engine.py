"""Flow engine behaviour beyond the default playbooks: edits mid-run, re-entry, fan-out, branches, fallbacks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.scenarios.story import Story, messages

CONSENT = {"push": True, "email": True, "in_app": True}

FLOW = """
flows:
  camera_deals: null   # the default camera campaign also starts on camera views; these tests follow their own flow
  camera_drip:
    trigger: {event: item_viewed, where: {category: cameras}, per: listing_id}
    exit_on:
      - event: purchase
        where: {listing_ids: {contains: "{{ entity }}"}}
    steps:
      - name: first
        send: {channel: push, template: cart_nudge_push}
      - wait: {for: 2d}
      - name: second
        send: {channel: email, template: churn_winback_email}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "growth.yaml"
    path.write_text(FLOW, encoding="utf-8")
    return path


@pytest.fixture
def flow_engine(tmp_path: Path, clock: ManualClock, config_file: Path) -> Engine:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", config_file=config_file)
    eng = build_engine(settings, clock=clock)
    yield eng  # type: ignore[misc]
    eng.close()


def _viewer(story: Story, user: str, listing: str = "L1") -> None:
    story.identify(user, email=f"{user}@example.test", push_token="t", consent=CONSENT)
    story.track(user, "item_viewed", listing_id=listing, title="Leica M6", category="cameras", price=90000)


def test_a_flow_edited_mid_run_keeps_runs_in_flight_on_their_version(
        flow_engine: Engine, clock: ManualClock, config_file: Path) -> None:
    story = Story(flow_engine, clock)
    _viewer(story, "old")
    config_file.write_text(FLOW.replace("for: 2d", "for: 5d").replace("churn_winback_email", "high_ltv_vip_email"),
                           encoding="utf-8")
    assert flow_engine.reload_config() is None
    _viewer(story, "new")
    story.advance(days=2)
    assert [m["step"] for m in messages(flow_engine, "old")] == ["first", "second"]
    assert "second" not in [m["step"] for m in messages(flow_engine, "new")]
    story.advance(days=3)
    old_email = messages(flow_engine, "old")[1]
    new_email = messages(flow_engine, "new")[1]
    assert old_email["subject"] != new_email["subject"], "each run rendered its own version's template"


def test_one_live_run_per_user_and_entity_and_re_entry_after_exit(flow_engine: Engine, clock: ManualClock) -> None:
    story = Story(flow_engine, clock)
    _viewer(story, "u1")
    story.track("u1", "item_viewed", listing_id="L1", category="cameras")  # same entity: no second run
    story.track("u1", "item_viewed", listing_id="L2", category="cameras")  # another entity: its own run
    with flow_engine.store.transaction() as tx:
        runs = tx.runs.for_user("u1")
    assert sorted(r.entity for r in runs) == ["L1", "L2"]
    story.track("u1", "purchase", order_id="O", amount=1, listing_ids=["L1"])
    story.track("u1", "item_viewed", listing_id="L1", category="cameras")  # re-entry after the exit
    with flow_engine.store.transaction() as tx:
        runs = tx.runs.for_user("u1")
    assert [(r.entity, r.status) for r in runs] == [("L1", "exited"), ("L2", "active"), ("L1", "active")]


def test_price_drop_fans_out_to_many_favoriters(engine: Engine, clock: ManualClock) -> None:
    story = Story(engine, clock)
    calls = [{"type": "track", "userId": "seller", "event": "listing_created",
              "properties": {"listing_id": "HOT", "title": "PS5", "price": 15000}}]
    for n in range(1500):
        calls.append({"type": "identify", "userId": f"f{n}", "traits": {"push_token": "t", "consent": CONSENT}})
        calls.append({"type": "track", "userId": f"f{n}", "event": "favorite_added",
                      "properties": {"listing_id": "HOT"}})
    for start in range(0, len(calls), 1000):
        assert not engine.ingest(calls[start:start + 1000]).rejected
    story.track("seller", "listing_price_changed", listing_id="HOT", old_price=15000, new_price=12000)
    sent = messages(engine, flow="price_drop")
    assert len(sent) == 1500 and len({m["userId"] for m in sent}) == 1500
    assert all(m["status"] == "sent" for m in sent)
    story.track("seller", "listing_price_changed", listing_id="HOT", old_price=12000, new_price=9000)
    second = messages(engine, flow="price_drop")[1500:]
    assert len(second) == 1500, "the first runs completed, so a new drop starts new ones"
    assert {(m["status"], m["reason"]) for m in second} == {("suppressed", "frequency_cap")}, "1 push a day"


def test_coupon_engine_down_takes_the_fallback(tmp_path: Path, clock: ManualClock) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", coupon_engine_url="http://127.0.0.1:9")
    engine = build_engine(settings, clock=clock)
    try:
        story = Story(engine, clock)
        story.identify("u1", email="u1@example.test", push_token="t", consent=CONSENT)
        story.track("u1", "add_to_cart", listing_id="L1", title="Fuji", price=100, stock=9)
        story.advance(days=1)
        story.advance(days=1)
        channels = [(m["channel"], m["status"]) for m in messages(engine, "u1", flow="cart_abandonment")]
        assert channels == [("push", "sent")], "no coupon: the coupon email and the coupon modal are skipped"
        with engine.store.transaction() as tx:
            [run] = [r for r in tx.runs.for_user("u1") if r.flow == "cart_abandonment"]
        assert run.context["action_failures"][0]["step"] == "coupon"
        assert [s["step"] for s in run.context["skipped"]] == ["coupon_email", "last_chance_modal"]
    finally:
        engine.close()
    _ = dt

"""SPEC 4.C through the engine: a user who ignored their last 10 marketing emails and opened 5 of their last 6
pushes scores email < 0.1 and push > 0.8, and their next promotional email goes by push (reason ``channel_score``),
in the copy of its push counterpart template. Every send and open here is a real one, on the manual clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.scenarios.story import Story, messages
from tests.unit.api_client import ADMIN, api_client

pytestmark = pytest.mark.anyio
BKK = dt.timezone(dt.timedelta(hours=7))
DAY0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=BKK)
CONSENT = {"push": True, "email": True, "in_app": True}
# A newsletter and an app tip on demand, besides the default flows.
FLOWS = """
flows:
  newsletter:
    trigger: {event: newsletter_due}
    steps:
      - name: newsletter_email
        send: {channel: email, kind: marketing, template: churn_winback_email}
  app_tip:
    trigger: {event: tip_due}
    steps:
      - name: tip_push
        send: {channel: push, kind: marketing, template: window_shopper_first_buy_push}
"""
# Ten emails within what the cap allows (3 in any 7 days), then six pushes (one a day).
EMAIL_DAYS = (0, 2, 5, 8, 10, 13, 16, 18, 21, 24)
PUSH_DAYS = (25, 26, 27, 28, 29, 30)
CART_DAY = 31


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    config = tmp_path / "growth.yaml"
    config.write_text(FLOWS, encoding="utf-8")
    clock = ManualClock(DAY0)
    eng = build_engine(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", data_dir=tmp_path / "data",
                                config_file=config, clock="manual", clock_start=DAY0), clock=clock)
    yield eng
    eng.close()


def live(story: Story, user: str, *, emails_opened: int) -> None:
    """Ten newsletters (the first ``emails_opened`` of them opened), then six app tips, five of them opened."""
    for day in EMAIL_DAYS:
        story.advance_to(DAY0 + dt.timedelta(days=day))
        story.track(user, "newsletter_due")
    sent = [m for m in messages(story.engine, user, flow="newsletter")]
    assert [m["channel"] for m in sent] == ["email"] * 10 and {m["status"] for m in sent} == {"sent"}, sent
    for m in sent[:emails_opened]:
        story.track(user, "message_opened", message_id=m["id"])
    for n, day in enumerate(PUSH_DAYS):
        story.advance_to(DAY0 + dt.timedelta(days=day))
        story.track(user, "tip_due")
        push = messages(story.engine, user, flow="app_tip")[-1]
        assert (push["channel"], push["status"]) == ("push", "sent"), push
        if n > 0:  # the first one is ignored
            story.advance(minutes=20)
            story.track(user, "message_opened", message_id=push["id"])


def coupon_message(story: Story, user: str) -> dict[str, object]:
    story.advance_to(DAY0 + dt.timedelta(days=CART_DAY))
    story.track(user, "add_to_cart", listing_id="L1", title="Fuji X100V", price=32000, stock=9)
    story.advance(days=1, hours=1)
    found = [m for m in messages(story.engine, user, flow="cart_abandonment") if m["step"] == "coupon_email"]
    assert len(found) == 1, found
    return found[0]


async def test_ten_ignored_emails_and_five_opened_pushes_switch_the_next_promotional_email_to_push(
        engine: Engine) -> None:
    story = Story(engine, engine.clock)  # type: ignore[arg-type]
    story.identify("u1", email="u1@example.test", push_token="t1", consent=CONSENT)
    live(story, "u1", emails_opened=0)
    async with api_client(engine) as client:
        scores = (await client.get("/v1/users/u1/channel-scores", headers=ADMIN)).json()
    assert scores["email"] < 0.1 and scores["push"] > 0.8, scores
    assert engine.channel_scores("u1") == scores

    coupon = coupon_message(story, "u1")
    assert (coupon["channel"], coupon["reason"], coupon["status"]) == ("push", "channel_score", "sent"), coupon
    assert coupon["title"] == "ลดให้พิเศษ 5% เฉพาะคุณ 🏷️" and "subject" not in coupon
    assert coupon["coupon"] and str(coupon["coupon"]) in str(coupon["body"])  # the push counterpart's copy
    stored = engine.messages(user_id="u1", flow="cart_abandonment")[-1]
    assert stored.data["planned_channel"] == "email" and stored.data["template"] == "cart_coupon_push"
    assert "email score 0.0" in stored.data["route"] and "counterpart" not in stored.data


async def test_an_email_reader_keeps_getting_email(engine: Engine) -> None:
    story = Story(engine, engine.clock)  # type: ignore[arg-type]
    story.identify("u2", email="u2@example.test", push_token="t2", consent=CONSENT)
    live(story, "u2", emails_opened=1)
    scores = engine.channel_scores("u2")
    assert scores is not None and 0.2 < scores["email"] < 0.5 and scores["push"] > 0.8, scores
    coupon = coupon_message(story, "u2")
    assert (coupon["channel"], coupon.get("reason")) == ("email", None), coupon
    assert str(coupon["subject"]).startswith("ลดให้พิเศษ")
    stored = engine.messages(user_id="u2", flow="cart_abandonment")[-1]
    assert "counterpart" not in stored.data  # the unused push copy is not kept on the ledger

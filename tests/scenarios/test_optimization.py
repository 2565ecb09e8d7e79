"""Send-time AI and channel preference through the engine: the API answers and what they do to sends."""

from __future__ import annotations

import datetime as dt

import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.scenarios.story import Story, messages
from tests.unit.api_client import ADMIN, api_client

pytestmark = pytest.mark.anyio
BKK = dt.timezone(dt.timedelta(hours=7))
CONSENT = {"push": True, "email": True, "in_app": True}


async def test_send_time_falls_back_to_the_global_peak_then_learns_the_users_habit(
        engine: Engine, clock: ManualClock) -> None:
    story = Story(engine, clock)
    story.identify("u1", push_token="t", consent=CONSENT)
    async with api_client(engine) as client:
        answer = (await client.get("/v1/users/u1/send-time", params={"channel": "push"}, headers=ADMIN)).json()
        assert answer["source"] == "global"
        local = dt.datetime.fromisoformat(answer["sendAt"].replace("Z", "+00:00")).astimezone(BKK)
        assert 18 <= local.hour < 21
        # Thirty mornings of opening the app at 08:15 Bangkok time.
        for day in range(30):
            at = dt.datetime(2025, 12, 5, 8, 15, tzinfo=BKK) + dt.timedelta(days=day)
            story.track("u1", "app_opened", at=at)
        answer = (await client.get("/v1/users/u1/send-time", params={"channel": "push"}, headers=ADMIN)).json()
        assert answer["source"] == "personal"
        local = dt.datetime.fromisoformat(answer["sendAt"].replace("Z", "+00:00")).astimezone(BKK)
        assert (local.hour, local.minute) in {(8, 0), (8, 15), (8, 30)}, answer
        missing = await client.get("/v1/users/nobody/send-time", headers=ADMIN)
        assert missing.status_code == 404
        bad = await client.get("/v1/users/u1/send-time", params={"after": "yesterday"}, headers=ADMIN)
        assert bad.status_code == 400


async def test_channel_scores_follow_engagement_and_switch_promotional_email_to_push(
        engine: Engine, clock: ManualClock) -> None:
    story = Story(engine, clock)
    story.identify("u1", email="u1@example.test", push_token="t", consent=CONSENT)
    with engine.store.transaction() as tx:
        from growthengine.engagement.tracker import EngagementTracker
        from growthengine.optimize.channel_scores import ChannelScores

        scores = ChannelScores()
        for day in range(40):
            at = clock.now() - dt.timedelta(days=40 - day)
            scores.observe("email", at, sends=1)
            scores.observe("push", at, sends=1, engagements=1)
        tx.user_models.save_many("channels", {"u1": scores.to_json()}, 0)
        assert EngagementTracker  # the tracker keeps these documents current from sends and opens
    async with api_client(engine) as client:
        got = (await client.get("/v1/users/u1/channel-scores", headers=ADMIN)).json()
    assert set(got) >= {"push", "email", "sms", "in_app"}
    assert all(0 <= v <= 1 for v in got.values())
    assert got["email"] < 0.1 and got["push"] > 0.8, got
    for i in range(25):
        story.track("u1", "item_viewed", listing_id=f"L{i}")
    story.track("u1", "add_to_cart", listing_id="L1", title="Fuji", price=100, stock=9)
    story.advance(days=1, hours=1)
    emails = [m for m in messages(engine, "u1", flow="cart_abandonment") if m["step"] == "coupon_email"]
    assert emails and emails[0]["channel"] == "push" and emails[0]["reason"] == "channel_score"

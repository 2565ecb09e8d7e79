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


async def test_opens_teach_the_channel_scores_until_promotional_email_goes_by_push(
        engine: Engine, clock: ManualClock) -> None:
    """SPEC 4.C end to end: the user opens every cart nudge push (``message_opened`` with its id) and never an
    email; the scores the engine learns from those events move until a coupon email is sent by push instead."""
    story = Story(engine, clock)
    story.identify("u1", email="u1@example.test", push_token="t", consent=CONSENT)
    async with api_client(engine) as client:

        async def scores() -> dict[str, float]:
            answer = await client.get("/v1/users/u1/channel-scores", headers=ADMIN)
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        assert await scores() == {"push": 0.5, "email": 0.5, "sms": 0.5, "in_app": 0.5}, "no evidence yet"
        read: list[dict[str, float]] = []
        coupons: list[dict[str, object]] = []
        for day in range(45):  # a cart a day at 09:00: nudge push at 10:00, coupon email at 09:00 the next day
            story.track("u1", "add_to_cart", listing_id=f"L{day}", title="Fuji X100V", price=32000, stock=9)
            story.advance(hours=1)
            for push in messages(engine, "u1", channel="push", status="sent"):
                story.track("u1", "message_opened", message_id=push["id"])
            story.advance(hours=23)
            read.append(await scores())
            coupons = [m for m in messages(engine, "u1", flow="cart_abandonment") if m["step"] == "coupon_email"]
            if coupons[-1]["channel"] == "push":
                break
    switched = coupons[-1]
    assert (switched["channel"], switched["status"], switched["reason"]) == ("push", "sent", "channel_score")
    assert read[-1]["email"] < 0.1 and read[-1]["push"] > 0.8, read[-1]
    assert len(read) > 7, "a few unopened emails are not enough evidence to stop email"
    assert read[0]["push"] > read[0]["email"] > 0.1, read[0]
    assert all(r["email"] >= 0.1 for r in read[:-2]), "the switch came as soon as the email score fell below 0.1"
    earlier = coupons[:-1]
    assert {(m["channel"], m.get("reason")) for m in earlier} == {("email", None), ("email", "frequency_cap")}
    assert sum(m["status"] == "sent" for m in earlier) >= 10
    opened = messages(engine, "u1", channel="push", status="opened")
    assert len(opened) == len(read) and {m["step"] for m in opened} == {"nudge_push"}, "every open reached its push"

"""Messages that stay true, through the HTTP inbox: the last-chance modal states the coupon's time left as of the
moment the app opens, and a user whose coupon email was suppressed is given the code, not told about "your coupon"."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_ingest

pytestmark = pytest.mark.anyio
EVERY_CHANNEL = {"push": True, "email": True, "sms": True, "in_app": True}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as c:
        yield c


async def abandon_a_cart(client: httpx.AsyncClient, engine: Engine, clock: ManualClock, user: str,
                         consent: dict[str, bool], language: str = "th") -> dict[str, Any]:
    """The user leaves a camera in the cart; two days later the modal waits in the inbox (returned as the app
    reads it then)."""
    identify = {"userId": user, "traits": {"email": f"{user}@example.test", "push_token": f"tok-{user}",
                                           "language": language, "consent": consent}}
    assert_ingest(await client.post("/v1/identify", json=identify, headers=WRITE), accepted=1)
    cart = {"userId": user, "event": "add_to_cart", "properties": {"listing_id": "L1", "title": "Olympus OM-1",
                                                                    "price": 4500, "stock": 2}}
    assert_ingest(await client.post("/v1/track", json=cart, headers=WRITE), accepted=1)
    engine.advance(clock.now() + dt.timedelta(hours=48))
    return await modal(client, user)


async def modal(client: httpx.AsyncClient, user: str) -> dict[str, Any]:
    response = await client.get(f"/v1/users/{user}/inbox", headers=ADMIN)
    assert response.status_code == 200, response.text
    [found] = [m for m in response.json()["messages"] if m["step"] == "last_chance_modal"]
    return found


async def test_the_time_left_is_the_time_left_when_the_app_opens(client: httpx.AsyncClient, engine: Engine,
                                                                 clock: ManualClock) -> None:
    first = await abandon_a_cart(client, engine, clock, "u1", EVERY_CHANNEL)
    assert first["body"].startswith("โอกาสสุดท้าย! คูปองของคุณจะหมดอายุใน 2 ชม."), first["body"]
    engine.advance(clock.now() + dt.timedelta(minutes=90))  # the app opens 90 minutes later
    later = await modal(client, "u1")
    assert later["id"] == first["id"]
    assert later["body"].startswith("โอกาสสุดท้าย! คูปองของคุณจะหมดอายุใน 30 นาที"), later["body"]
    assert later["coupon"] and later["coupon"] in later["body"]
    engine.advance(clock.now() + dt.timedelta(minutes=29, seconds=30))
    assert "ไม่ถึง 1 นาที" in (await modal(client, "u1"))["body"]
    read = await client.post(f"/v1/users/u1/inbox/{first['id']}/read", headers=ADMIN)
    assert read.status_code == 200 and "ไม่ถึง 1 นาที" in read.json()["body"]


async def test_a_user_who_never_got_the_coupon_email_gets_the_code(client: httpx.AsyncClient, engine: Engine,
                                                                   clock: ManualClock) -> None:
    no_email = {**EVERY_CHANNEL, "email": False}
    found = await abandon_a_cart(client, engine, clock, "u2", no_email)
    assert found["coupon"] and found["coupon"] in found["body"]
    assert "คูปองของคุณ" not in found["body"] + found["title"], "no reference to a coupon the user never saw"
    assert found["title"] == "ของในตะกร้ายังรอคุณอยู่ 🛒"
    assert found["body"].startswith("ส่วนลด 5% สำหรับคุณ: ใช้โค้ด"), found["body"]
    listed = await client.get("/v1/messages", params={"userId": "u2", "channel": "email"}, headers=ADMIN)
    email = [m for m in listed.json()["messages"] if m["step"] == "coupon_email"]
    assert [(m["status"], m["reason"]) for m in email] == [("suppressed", "consent")]
    english = await abandon_a_cart(client, engine, clock, "u3", no_email, language="en")
    assert english["body"].startswith("5% off for you: use code "), english["body"]
    assert "your coupon" not in english["body"].lower() + english["title"].lower()

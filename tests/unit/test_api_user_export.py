"""``GET /v1/users/{userId}/export`` (CONTRACT.md 10): everything held about the user, read-only, admin key only."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error, assert_ingest, event_count

pytestmark = pytest.mark.anyio

CONSENT = {"push": True, "email": True, "in_app": True}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(engine: Engine, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    """A visitor who browsed anonymously, signed up, abandoned a cart (a push went out) and turned email off."""
    async with api_client(engine) as c:
        batch = [
            {"type": "page", "anonymousId": "visitor-1", "name": "Home", "context": {"ip": "203.0.113.7"}},
            {"type": "identify", "userId": "u1", "anonymousId": "visitor-1", "messageId": "id-1",
             "traits": {"email": "nok@example.com", "phone": "081-234-5678", "push_token": "tok-1",
                        "consent": CONSENT}},
            {"type": "track", "userId": "u1", "event": "favorite_added", "properties": {"listing_id": "L9"}},
            {"type": "track", "userId": "u1", "event": "add_to_cart",
             "properties": {"listing_id": "L1", "title": "Fuji X100V", "price": 32000, "stock": 2}},
        ]
        assert_ingest(await c.post("/v1/batch", json={"batch": batch}, headers=WRITE), accepted=4)
        engine.advance(clock.now() + dt.timedelta(hours=1))
        off = {"userId": "u1", "event": "unsubscribed", "properties": {"channel": "email"}}
        assert_ingest(await c.post("/v1/track", json=off, headers=WRITE), accepted=1)
        yield c


async def test_the_export_holds_everything_about_the_user(client: httpx.AsyncClient, engine: Engine) -> None:
    before = event_count(engine)
    response = await client.get("/v1/users/u1/export", headers=ADMIN)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["userId"] == "u1" and data["exportVersion"] == 1

    profile = data["profile"]
    assert profile["traits"]["phone"] == "+66812345678" and profile["traits"]["email"] == "nok@example.com"
    assert profile["traits"]["consent"] == {**CONSENT, "email": False}
    assert set(profile["traitsSetAt"]) == set(profile["traits"])
    assert [a["anonymousId"] for a in profile["anonymousIds"]] == ["visitor-1"]
    assert profile["firstSeen"] == "2026-01-05T02:00:00Z"

    events = data["events"]
    assert [e["name"] for e in events] == ["page", "identify", "favorite_added", "add_to_cart", "unsubscribed"]
    assert events[0]["extra"]["context"] == {"ip": "203.0.113.7"}  # what was received with it, context included
    assert events[1]["messageId"] == "id-1" and events[1]["properties"]["email"] == "nok@example.com"

    [membership] = [m for m in data["memberships"] if m["segment"] == "cart_abandoners"]
    assert membership["entity"] == "L1" and membership["reason"]
    assert any(t["segment"] == "cart_abandoners" and t["kind"] == "enter" and t["reason"]
               for t in data["segmentHistory"])

    [push] = data["messages"]
    assert push["channel"] == "push" and push["flow"] == "cart_abandonment" and "Fuji X100V" in push["body"]

    consent = [(c["channel"], c["granted"]) for c in data["consentHistory"]]
    assert ("email", True) in consent and consent[-1] == ("email", False)
    assert all(c["source"] and c["at"] for c in data["consentHistory"])
    assert "cart_abandonment" in [r["flow"] for r in data["flowRuns"]]
    assert data["favorites"][0]["listingId"] == "L9"
    assert isinstance(data["models"], dict) and isinstance(data["coupons"], list)

    assert event_count(engine) == before  # read-only
    assert (await client.get("/v1/users/u1/export", headers=ADMIN)).json() == data


async def test_the_export_needs_the_admin_key_and_a_known_user(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/users/u1/export", headers=WRITE), 403)
    assert_error(await client.get("/v1/users/u1/export"), 401)
    assert_error(await client.get("/v1/users/nobody/export", headers=ADMIN), 404, "not_found")
    assert_error(await client.get("/v1/users/anon:visitor-1/export", headers=ADMIN), 404)
    assert_error(await client.get("/v1/users/u%001/export", headers=ADMIN), 400)


async def test_an_anonymous_visitors_activity_is_in_the_users_export_after_identify(engine: Engine) -> None:
    async with api_client(engine) as c:
        view = {"anonymousId": "v-2", "event": "item_viewed", "properties": {"listing_id": "L3"}}
        assert_ingest(await c.post("/v1/track", json=view, headers=WRITE), accepted=1)
        assert_ingest(await c.post("/v1/identify", json={"userId": "u2", "anonymousId": "v-2"}, headers=WRITE),
                      accepted=1)
        data = (await c.get("/v1/users/u2/export", headers=ADMIN)).json()
        assert [e["name"] for e in data["events"]] == ["item_viewed", "identify"]
        assert data["events"][0]["anonymousId"] == "v-2"

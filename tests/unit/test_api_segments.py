"""GET /v1/segments, /v1/segments/{key}/members and segments on the user (CONTRACT.md 3.2)."""

from __future__ import annotations

import datetime as dt

import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error

pytestmark = pytest.mark.anyio


async def test_segments_list_members_and_user(engine: Engine, clock: ManualClock) -> None:
    for n in range(5):
        engine.ingest([{"type": "track", "userId": f"u{n}", "event": "purchase",
                        "properties": {"order_id": f"O{n}", "amount": 6000, "listing_ids": ["L"]}}])
    async with api_client(engine) as client:
        listing = (await client.get("/v1/segments", headers=ADMIN)).json()
        by_key = {s["key"]: s for s in listing}
        assert set(by_key) == {"churn_risk", "high_ltv", "window_shoppers", "local_buyers", "cart_abandoners"}
        assert by_key["high_ltv"] == {"key": "high_ltv", "name": "💎 High LTV", "refresh": "realtime", "size": 5,
                                      "description": by_key["high_ltv"]["description"]}
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/v1/segments/high_ltv/members", params=params, headers=ADMIN)).json()
            seen += page["members"]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == ["u0", "u1", "u2", "u3", "u4"]
        user = (await client.get("/v1/users/u3", headers=ADMIN)).json()
        assert user["segments"] == ["high_ltv"]
        assert user["computed"]["segment_reasons"] == {"high_ltv": "sum(purchase.amount, lifetime) = 6000 > 5000"}
        assert_error(await client.get("/v1/segments/nope/members", headers=ADMIN), 404, "not_found")
        assert_error(await client.get("/v1/segments/high_ltv/members?cursor=%%%", headers=ADMIN), 400)
        assert_error(await client.get("/v1/segments/high_ltv/members?limit=0", headers=ADMIN), 400)
        assert_error(await client.get("/v1/segments", headers=WRITE), 403, "forbidden")


async def test_cart_abandoner_visible_through_the_api_after_the_clock_moves(engine: Engine,
                                                                           clock: ManualClock) -> None:
    async with api_client(engine) as client:
        await client.post("/v1/track", headers=ADMIN, json={
            "userId": "u1", "event": "add_to_cart",
            "properties": {"listing_id": "L1", "title": "กล้อง", "price": 1000, "stock": 2}})
        to = (clock.now() + dt.timedelta(hours=1)).isoformat()
        advanced = (await client.post("/v1/clock/advance", headers=ADMIN, json={"to": to})).json()
        assert advanced["processed"] >= 1
        members = (await client.get("/v1/segments/cart_abandoners/members", headers=ADMIN)).json()
        assert members == {"members": ["u1"], "next": None}

"""One-off broadcasts (CONTRACT.md 11): through the log and the gate, messages carrying the broadcast, counts."""

from __future__ import annotations

import datetime as dt

import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error

pytestmark = pytest.mark.anyio


def _members(engine: Engine) -> None:
    for n in range(3):
        traits = {"push_token": "tok", "language": "en"}
        if n < 2:
            traits["consent"] = {"push": True}  # type: ignore[assignment]
        engine.ingest([{"type": "identify", "userId": f"vip{n}", "traits": traits},
                       {"type": "track", "userId": f"vip{n}", "event": "purchase",
                        "properties": {"order_id": f"O{n}", "amount": 6000, "listing_ids": ["L"]}}])
    engine.ingest([{"type": "identify", "userId": "other", "traits": {"push_token": "tok",
                                                                       "consent": {"push": True}}}])


async def test_a_broadcast_now_goes_through_the_gate_with_counts(any_engine: Engine, clock: ManualClock) -> None:
    engine = any_engine
    _members(engine)
    async with api_client(engine) as client:
        body = {"name": "VIP thanks", "segment": "high_ltv", "template": "window_shopper_first_buy_push",
                "channel": "push", "at": clock.now().isoformat()}
        made = await client.post("/v1/broadcasts", json=body, headers=ADMIN)
        assert made.status_code == 200, made.text
        broadcast = made.json()
        assert broadcast["members"] == 3 and broadcast["createdBy"] == "env:admin"
        assert broadcast["counts"] == {"messages": 3, "sent": 2, "byStatus": {"sent": 2, "suppressed": 1}}
        again = (await client.get(f"/v1/broadcasts/{broadcast['id']}", headers=ADMIN)).json()
        assert again == broadcast
        listed = (await client.get("/v1/messages?flow=broadcast", headers=ADMIN)).json()["messages"]
        assert sorted(m["userId"] for m in listed) == ["vip0", "vip1", "vip2"]
        assert {m["broadcast"] for m in listed} == {broadcast["id"]}
        assert {m["reason"] for m in listed if m["status"] == "suppressed"} == {"consent"}
        assert {m["title"] for m in listed} == {"Found something you like? 👀"}


@pytest.mark.parametrize("when", ["later", "best_time"])
async def test_a_broadcast_later_or_at_each_members_best_time(engine: Engine, clock: ManualClock, when: str) -> None:
    _members(engine)
    at = (clock.now() + dt.timedelta(hours=2)).isoformat() if when == "later" else "best_time"
    async with api_client(engine) as client:
        made = (await client.post("/v1/broadcasts", headers=ADMIN, json={
            "name": "Later", "segment": "high_ltv", "template": "window_shopper_first_buy_push", "channel": "push",
            "at": at})).json()
        assert made["counts"]["messages"] == 3
        if when == "later":
            assert made["counts"]["byStatus"] == {"scheduled": 3}  # the gate decides when the time comes
            assert made["sendAt"] == "2026-01-05T04:00:00Z"
        else:
            assert made["sendAt"] is None
        await client.post("/v1/clock/advance", json={"by": "PT25H"}, headers=ADMIN)
        counts = (await client.get(f"/v1/broadcasts/{made['id']}", headers=ADMIN)).json()["counts"]
        assert counts["byStatus"] == {"sent": 2, "suppressed": 1}, counts


async def test_broadcast_refusals(engine: Engine, clock: ManualClock) -> None:
    _members(engine)
    good = {"name": "x", "segment": "high_ltv", "template": "window_shopper_first_buy_push", "channel": "push",
            "at": "best_time"}
    async with api_client(engine) as client:
        assert_error(await client.post("/v1/broadcasts", json={**good, "segment": "nope"}, headers=ADMIN), 422)
        assert_error(await client.post("/v1/broadcasts", json={**good, "template": "nope"}, headers=ADMIN), 422)
        assert_error(await client.post("/v1/broadcasts", json={**good, "channel": "sms"}, headers=ADMIN), 422)
        assert_error(await client.post("/v1/broadcasts", json={**good, "at": "tomorrow"}, headers=ADMIN), 400)
        assert_error(await client.post("/v1/broadcasts", json={**good, "at": "2026-01-05T10:00:00"},
                                       headers=ADMIN), 400)
        assert_error(await client.post("/v1/broadcasts", json={**good, "channel": "fax"}, headers=ADMIN), 400)
        assert_error(await client.post("/v1/broadcasts", json=good, headers=WRITE), 403)
        assert_error(await client.get("/v1/broadcasts/bc_none", headers=ADMIN), 404)
        assert (await client.get("/v1/messages?flow=broadcast", headers=ADMIN)).json()["messages"] == []

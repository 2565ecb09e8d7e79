"""Late events over HTTP on the manual clock (Mon 5 Jan 2026 09:00 ICT): segment state is kept in event time, and a
segment entry starts flows only while it is fresh (CONTRACT.md 8, "Late events")."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.settings import Settings, load_settings
from tests.unit.api_client import ADMIN, api_client

pytestmark = pytest.mark.anyio

CONSENT_ALL = {"push": True, "email": True, "sms": True, "in_app": True, "ads": True}
_ids = itertools.count()


async def _post(client: httpx.AsyncClient, route: str, body: dict[str, Any]) -> None:
    response = await client.post(route, json={"messageId": f"late-{next(_ids)}", **body}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []


async def shopper(client: httpx.AsyncClient, user: str) -> None:
    await _post(client, "/v1/identify", {"userId": user, "traits": {
        "email": f"{user}@example.test", "push_token": f"tok-{user}", "language": "th", "consent": CONSENT_ALL}})


async def track(client: httpx.AsyncClient, user: str, event: str, at: dt.datetime, **properties: Any) -> None:
    await _post(client, "/v1/track", {"userId": user, "event": event, "properties": properties,
                                      "timestamp": at.isoformat()})


async def add_camera(client: httpx.AsyncClient, user: str, at: dt.datetime) -> None:
    await track(client, user, "add_to_cart", at, listing_id="L1", title="กล้องฟิล์ม Olympus OM-1", price=4500, stock=2)


async def advance(client: httpx.AsyncClient, **delta: float) -> None:
    now = (await client.get("/v1/clock", headers=ADMIN)).json()["now"]
    target = dt.datetime.fromisoformat(now.replace("Z", "+00:00")) + dt.timedelta(**delta)
    response = await client.post("/v1/clock/advance", json={"to": target.isoformat()}, headers=ADMIN)
    assert response.status_code == 200, response.text


async def segments_of(client: httpx.AsyncClient, user: str) -> list[str]:
    response = await client.get(f"/v1/users/{user}", headers=ADMIN)
    assert response.status_code == 200, response.text
    segments: list[str] = response.json()["segments"]
    return segments


async def pushes(client: httpx.AsyncClient, user: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/messages", params={"userId": user, "channel": "push"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["messages"]
    return found


async def test_a_purchase_that_arrives_before_its_earlier_add_to_cart_cancels_the_abandonment(
        engine: Engine, clock: ManualClock) -> None:
    now = clock.now()
    async with api_client(engine) as client:
        await shopper(client, "u1")
        await track(client, "u1", "purchase", now, order_id="O1", amount=4500, listing_ids=["L1"])
        await add_camera(client, "u1", now - dt.timedelta(minutes=30))  # arrives second, happened first
        await advance(client, hours=2)
        assert "cart_abandoners" not in await segments_of(client, "u1")
        assert await pushes(client, "u1") == []
        # The same late cart add with no purchase behind it still makes an abandoner, and the nudge goes at T+1h.
        await shopper(client, "u2")
        await add_camera(client, "u2", clock.now() - dt.timedelta(minutes=30))
        assert "cart_abandoners" not in await segments_of(client, "u2")
        await advance(client, minutes=30)
        assert "cart_abandoners" in await segments_of(client, "u2")
        [push] = await pushes(client, "u2")
        assert push["flow"] == "cart_abandonment" and push["status"] == "sent"
    with engine.store.transaction() as tx:
        assert tx.segments.transitions(user_id="u1", segment="cart_abandoners") == []


async def test_a_remove_from_cart_that_arrives_first_cancels_it_too(engine: Engine, clock: ManualClock) -> None:
    now = clock.now()
    async with api_client(engine) as client:
        await shopper(client, "u1")
        await track(client, "u1", "remove_from_cart", now - dt.timedelta(minutes=5), listing_id="L1")
        await add_camera(client, "u1", now - dt.timedelta(minutes=20))
        await advance(client, hours=1)
        assert "cart_abandoners" not in await segments_of(client, "u1")
        assert await pushes(client, "u1") == []


async def test_at_the_same_instant_the_arrival_order_decides(engine: Engine, clock: ManualClock) -> None:
    """A cart add and a purchase of one listing stamped with one instant: whichever arrived later follows."""
    now = clock.now()
    async with api_client(engine) as client:
        for user in ("bought", "added_after"):
            await shopper(client, user)
        await add_camera(client, "bought", now)
        await track(client, "bought", "purchase", now, order_id="O1", amount=4500, listing_ids=["L1"])
        await track(client, "added_after", "purchase", now, order_id="O2", amount=4500, listing_ids=["L1"])
        await add_camera(client, "added_after", now)
        await advance(client, hours=1)
        assert "cart_abandoners" not in await segments_of(client, "bought")
        assert "cart_abandoners" in await segments_of(client, "added_after")
    # A rebuild from the log reaches the same answer.
    engine.rebuild_segments(["cart_abandoners"])
    assert "cart_abandoners" not in (engine.user_view("bought") or {})["segments"]
    assert "cart_abandoners" in (engine.user_view("added_after") or {})["segments"]


async def test_a_cart_add_back_filled_from_three_hours_ago_makes_an_abandoner_but_sends_no_push(
        engine: Engine, clock: ManualClock) -> None:
    now = clock.now()
    async with api_client(engine) as client:
        await shopper(client, "late")
        await add_camera(client, "late", now - dt.timedelta(hours=3))
        assert "cart_abandoners" in await segments_of(client, "late")
        await advance(client, hours=2)
        assert await pushes(client, "late") == []
    with engine.store.transaction() as tx:
        [entry] = tx.segments.transitions(user_id="late", segment="cart_abandoners")
        assert tx.runs.ever_entered("cart_abandonment", ["late"]) == set()
    assert (entry.kind, entry.origin) == ("enter", "live")
    assert entry.event_us == entry.at_us - 2 * 3_600_000_000, "it became a member when its hour ran out, 2 h ago"
    assert entry.reason.endswith("found 2 h 0 min after its event time (more than flow_entry_max_lag): "
                                 "starts no flow"), entry.reason


async def test_a_cart_add_back_filled_from_ten_minutes_ago_still_sends_the_push(
        engine: Engine, clock: ManualClock) -> None:
    now = clock.now()
    async with api_client(engine) as client:
        await shopper(client, "recent")
        await add_camera(client, "recent", now - dt.timedelta(minutes=10))
        await advance(client, minutes=49)
        assert await pushes(client, "recent") == []
        await advance(client, minutes=1)
        [push] = await pushes(client, "recent")
        assert push["flow"] == "cart_abandonment" and push["status"] == "sent"
        assert push["sentAt"] == "2026-01-05T02:50:00Z", "T+1h of the cart add, 09:50 Bangkok"
    with engine.store.transaction() as tx:
        [entry] = tx.segments.transitions(user_id="recent", segment="cart_abandoners")
    assert entry.event_us == entry.at_us and "starts no flow" not in entry.reason


async def test_flow_entry_max_lag_is_a_setting(sqlite_url: str, clock: ManualClock, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(db_url=sqlite_url, data_dir=tmp_path / "data", clock="manual", clock_start=clock.now(),
                        flow_entry_max_lag="4h")
    engine = build_engine(settings, clock=clock)
    try:
        async with api_client(engine) as client:
            await shopper(client, "late")
            await add_camera(client, "late", clock.now() - dt.timedelta(hours=3))
            [push] = await pushes(client, "late")
            assert push["flow"] == "cart_abandonment"
    finally:
        engine.close()
    monkeypatch.setenv("GROWTH_FLOW_ENTRY_MAX_LAG", "30m")
    assert load_settings().flow_entry_max_lag == dt.timedelta(minutes=30)
    assert load_settings(flow_entry_max_lag=900).flow_entry_max_lag == dt.timedelta(minutes=15)
    assert load_settings(flow_entry_max_lag="PT2H").flow_entry_max_lag == dt.timedelta(hours=2)
    assert Settings().flow_entry_max_lag == dt.timedelta(minutes=30)
    monkeypatch.delenv("GROWTH_FLOW_ENTRY_MAX_LAG")
    assert Settings().flow_entry_max_lag == dt.timedelta(hours=1)
    for bad in ("soon", "-5m", -1):
        with pytest.raises(ValidationError, match="flow_entry_max_lag"):
            Settings(flow_entry_max_lag=bad)


def test_a_closing_event_is_kept_only_as_long_as_a_late_cart_add_could_meet_it(
        engine: Engine, clock: ManualClock) -> None:
    from growthengine.segments.feeds import feed_id

    pattern = engine.segments.segments["cart_abandoners"].pattern
    assert pattern is not None

    def open_entities() -> dict[str, Any]:
        with engine.store.transaction() as tx:
            state = tx.segments.load_states(["u1"])["u1"]
        entities: dict[str, Any] = state.get("f", {}).get(feed_id(pattern), {})
        return entities

    story_ids = itertools.count()

    def track(event: str, **properties: Any) -> None:
        result = engine.ingest([{"type": "track", "userId": "u1", "event": event, "properties": properties,
                                 "messageId": f"bounded-{next(story_ids)}"}])
        assert not result.rejected

    track("purchase", order_id="O1", amount=100, listing_ids=["L1"])
    assert list(open_entities()) == ["L1"], "kept: an earlier cart add may still arrive"
    engine.advance(clock.now() + dt.timedelta(days=7, minutes=1))
    track("app_opened")
    assert open_entities() == {}, "older than leaves_after: no cart add it could close would count any more"

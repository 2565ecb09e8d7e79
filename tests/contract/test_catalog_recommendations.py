"""The built-in recommendation fallback, on events ingested through the engine, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from growthengine.clock import ManualClock
from growthengine.content.recommendations import PopularInFavouriteCategory, Product
from growthengine.engine import Engine


def track(user: str, event: str, at: dt.datetime, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "properties": properties, "timestamp": at.isoformat()}


@pytest.fixture
def marketplace(any_engine: Engine, clock: ManualClock) -> Engine:
    now = clock.now()
    day = dt.timedelta(days=1)
    calls = [
        track("s1", "listing_created", now - 20 * day, listing_id="CAM1", title="Leica M6", price=45000,
              category="camera", image_url="https://img.jaikod.com/cam1.jpg"),
        track("s1", "listing_created", now - 19 * day, listing_id="CAM2", title="Fuji X100", price=30000,
              category="camera", image_url="https://img.jaikod.com/cam2.jpg"),
        track("s1", "listing_created", now - 18 * day, listing_id="CAM3", title="Canon AE-1", price=8000,
              category="camera"),
        track("s2", "listing_created", now - 17 * day, listing_id="CAM4", title="Nikon FM2", price=6500,
              category="camera"),
        track("s2", "listing_created", now - 16 * day, listing_id="BK1", title="Harry Potter set", price=900,
              category="books"),
        track("s2", "listing_created", now - 15 * day, listing_id="BK2", title="Thai cookbook", price=250,
              category="books"),
        track("s2", "listing_created", now - 2 * day, listing_id="FS1", title="Vintage denim", price=1200,
              category="fashion"),
        # CAM3 sold; CAM2's price dropped.
        track("s1", "item_sold", now - 3 * day, listing_id="CAM3", amount=8000),
        track("s1", "listing_price_changed", now - 4 * day, listing_id="CAM2", old_price=30000, new_price=25000),
        # An old burst of interest in BK2, outside the 30-day window: it must not count.
        *[track(f"old{i}", "item_viewed", now - 45 * day, listing_id="BK2", category="books") for i in range(30)],
    ]
    # Popularity in the window (view 1, favorite 3, purchase 5): BK1 10 views; CAM2 4 views + 1 favorite = 7;
    # CAM1 2 views + a purchase = 7; CAM4 1 view; CAM3 many views but sold. The camera lover below adds
    # 1 to BK1 and BK2, and 8 to CAM4.
    calls += [track(f"v{i}", "item_viewed", now - 5 * day, listing_id="BK1", category="books") for i in range(10)]
    calls += [track(f"w{i}", "item_viewed", now - 5 * day, listing_id="CAM2", category="camera") for i in range(4)]
    calls += [track("w9", "favorite_added", now - 5 * day, listing_id="CAM2")]
    calls += [track(f"x{i}", "item_viewed", now - 6 * day, listing_id="CAM1", category="camera") for i in range(2)]
    calls += [track("x9", "purchase", now - 6 * day, order_id="o-1", amount=45000, listing_ids=["CAM1"])]
    calls += [track("y1", "item_viewed", now - 6 * day, listing_id="CAM4", category="camera")]
    calls += [track(f"z{i}", "item_viewed", now - 6 * day, listing_id="CAM3", category="camera") for i in range(20)]
    # The camera lover: views books twice, but favorites and buys cameras.
    calls += [
        track("lover", "item_viewed", now - 3 * day, listing_id="BK1", category="books"),
        track("lover", "item_viewed", now - 3 * day, listing_id="BK2", category="books"),
        track("lover", "favorite_added", now - 2 * day, listing_id="CAM4"),
        track("lover", "purchase", now - 1 * day, order_id="o-2", amount=6500, listing_ids=["CAM4"]),
    ]
    result = any_engine.ingest(calls)
    assert result.rejected == []
    return any_engine


def test_popular_listings_in_the_users_favourite_category(marketplace: Engine, clock: ManualClock) -> None:
    engine = PopularInFavouriteCategory(marketplace.store, clock)
    answer = engine.recommend(["lover"], limit=3)
    assert [p.listing_id for p in answer["lover"]] == ["CAM2", "CAM1", "BK1"]
    first = answer["lover"][0]
    assert first == Product(
        listing_id="CAM2", title="Fuji X100", price=Decimal(25000), category="camera",
        image_url="https://img.jaikod.com/cam2.jpg", reason="popular_in_category:camera",
    )
    assert answer["lover"][2].reason == "popular_in_category:books"


def test_users_without_history_get_what_is_popular_overall(marketplace: Engine, clock: ManualClock) -> None:
    engine = PopularInFavouriteCategory(marketplace.store, clock)
    answer = engine.recommend(["stranger", "stranger"], limit=4)
    assert list(answer) == ["stranger"]
    # BK1 (11), CAM4 (9), then CAM2 and CAM1 (7 each; CAM2 is newer); sold CAM3 never appears.
    assert [p.listing_id for p in answer["stranger"]] == ["BK1", "CAM4", "CAM2", "CAM1"]
    assert {p.reason for p in answer["stranger"]} == {"popular"}


def test_sellers_are_not_offered_their_own_listings(marketplace: Engine, clock: ManualClock) -> None:
    engine = PopularInFavouriteCategory(marketplace.store, clock)
    picks = [p.listing_id for p in engine.recommend(["s1"], limit=10)["s1"]]
    assert not {"CAM1", "CAM2", "CAM3"} & set(picks)
    assert picks == ["BK1", "CAM4", "BK2", "FS1"]


def test_many_users_in_one_call(marketplace: Engine, clock: ManualClock) -> None:
    users = [f"v{i}" for i in range(10)] + [f"nobody{i}" for i in range(1200)]
    answer = PopularInFavouriteCategory(marketplace.store, clock).recommend(users, limit=2)
    assert len(answer) == len(users)
    assert [p.listing_id for p in answer["v3"]] == ["BK1", "BK2"]
    assert [p.listing_id for p in answer["nobody7"]] == ["BK1", "CAM4"]


def test_an_empty_catalog_gives_empty_lists(any_engine: Engine, clock: ManualClock) -> None:
    engine = PopularInFavouriteCategory(any_engine.store, clock)
    assert engine.recommend(["u1", "u2"]) == {"u1": [], "u2": []}
    assert engine.recommend([]) == {}


def test_it_can_answer_inside_the_callers_transaction(marketplace: Engine, clock: ManualClock) -> None:
    engine = PopularInFavouriteCategory(marketplace.store, clock)
    with marketplace.store.transaction() as tx:
        inside = engine.recommend_in(tx, ["lover"], limit=3)
    assert inside == engine.recommend(["lover"], limit=3)

"""The five default segments of CONTRACT.md 5, as stories on the manual clock (start: Mon 5 Jan 2026 09:00 ICT)."""

from __future__ import annotations

import datetime as dt

import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.scenarios.story import Story

BKK = dt.timezone(dt.timedelta(hours=7))


@pytest.fixture
def story(engine: Engine, clock: ManualClock) -> Story:
    return Story(engine, clock)


# 🛒 Cart abandoners: an add_to_cart not followed within 1 hour by a purchase (or removal) of it ------------------

def test_cart_abandoner_enters_one_hour_after_add_to_cart(story: Story) -> None:
    story.track("u1", "add_to_cart", listing_id="L1", title="Fuji X100V", price=32000, stock=1)
    story.advance(minutes=59)
    assert not story.in_segment("u1", "cart_abandoners")
    story.advance(minutes=1)
    assert story.in_segment("u1", "cart_abandoners")
    assert story.transitions("u1", "cart_abandoners") == [("cart_abandoners", "enter", "L1")]


def test_purchase_within_the_hour_means_no_abandonment(story: Story) -> None:
    story.track("u1", "add_to_cart", listing_id="L1", price=500)
    story.advance(minutes=30)
    story.track("u1", "purchase", order_id="O1", amount=500, listing_ids=["L1"])
    story.advance(hours=2)
    assert not story.in_segment("u1", "cart_abandoners")


def test_removing_the_item_means_no_abandonment_but_another_item_still_counts(story: Story) -> None:
    story.track("u1", "add_to_cart", listing_id="L1", price=500)
    story.track("u1", "add_to_cart", listing_id="L2", price=900)
    story.advance(minutes=10)
    story.track("u1", "remove_from_cart", listing_id="L1")
    story.advance(hours=1)
    assert story.transitions("u1", "cart_abandoners") == [("cart_abandoners", "enter", "L2")]


def test_abandoner_leaves_on_purchase_of_the_item(story: Story) -> None:
    story.track("u1", "add_to_cart", listing_id="L1", price=500)
    story.advance(hours=3)
    assert story.in_segment("u1", "cart_abandoners")
    story.track("u1", "purchase", order_id="O1", amount=500, listing_ids=["L1"])
    assert not story.in_segment("u1", "cart_abandoners")
    assert [k for _, k, _ in story.transitions("u1", "cart_abandoners")] == ["enter", "exit"]


def test_abandoner_leaves_after_seven_days(story: Story) -> None:
    story.track("u1", "add_to_cart", listing_id="L1", price=500)
    story.advance(days=6, hours=23)
    assert story.in_segment("u1", "cart_abandoners")
    story.advance(hours=1)
    assert not story.in_segment("u1", "cart_abandoners")


def test_back_filled_add_to_cart_enters_at_once(story: Story) -> None:
    story.track("u1", "add_to_cart", at=story.now - dt.timedelta(hours=2), listing_id="L9", price=100)
    assert story.in_segment("u1", "cart_abandoners")


# 💎 High LTV: lifetime purchases > 5,000 THB or more than 10 items sold (real-time) -------------------------------

def test_high_ltv_by_spend_is_real_time(story: Story) -> None:
    story.track("u1", "purchase", order_id="O1", amount=3000, listing_ids=["A"])
    assert not story.in_segment("u1", "high_ltv")
    story.track("u1", "purchase", order_id="O2", amount=2000, listing_ids=["B"])
    assert not story.in_segment("u1", "high_ltv"), "exactly 5,000 is not more than 5,000"
    story.track("u1", "purchase", order_id="O3", amount=0.5, listing_ids=["C"])
    assert story.in_segment("u1", "high_ltv")


def test_high_ltv_by_items_sold(story: Story) -> None:
    for i in range(10):
        story.track("s1", "item_sold", listing_id=f"L{i}", amount=100)
    assert not story.in_segment("s1", "high_ltv")
    story.track("s1", "item_sold", listing_id="L10", amount=100)
    assert story.in_segment("s1", "high_ltv")


# 👀 Window shoppers: > 20 item_viewed and no purchase in the last 7 days (hourly) ------------------------------

def test_window_shopper_enters_at_the_top_of_the_hour(story: Story) -> None:
    story.advance(minutes=10)  # 09:10
    for i in range(21):
        story.track("u1", "item_viewed", listing_id=f"L{i}", category="cameras", price=1000, province="Bangkok")
    assert not story.in_segment("u1", "window_shoppers"), "hourly segments change at the top of the hour"
    story.advance_to(dt.datetime(2026, 1, 5, 10, 0, tzinfo=BKK))
    assert story.in_segment("u1", "window_shoppers")


def test_twenty_views_is_not_enough(story: Story) -> None:
    for i in range(20):
        story.track("u1", "item_viewed", listing_id=f"L{i}")
    story.advance(hours=2)
    assert not story.in_segment("u1", "window_shoppers")


def test_window_shopper_leaves_on_purchase_at_the_next_hour(story: Story) -> None:
    for i in range(25):
        story.track("u1", "item_viewed", listing_id=f"L{i}")
    story.advance(hours=1)
    assert story.in_segment("u1", "window_shoppers")
    story.track("u1", "purchase", order_id="O1", amount=100, listing_ids=["L1"])
    assert story.in_segment("u1", "window_shoppers")
    story.advance(hours=1)
    assert not story.in_segment("u1", "window_shoppers")


def test_window_shopper_leaves_when_views_slide_out_of_the_week(story: Story) -> None:
    for i in range(21):
        story.track("u1", "item_viewed", listing_id=f"L{i}")
    story.advance(hours=1)
    assert story.in_segment("u1", "window_shoppers")
    story.advance(days=7)
    assert not story.in_segment("u1", "window_shoppers")


def test_old_purchase_sliding_out_lets_the_shopper_in(story: Story) -> None:
    story.track("u1", "purchase", at=story.now - dt.timedelta(days=6, hours=23), order_id="O", amount=10,
                listing_ids=["X"])
    for i in range(21):
        story.track("u1", "item_viewed", listing_id=f"L{i}")
    story.advance(minutes=50)
    assert not story.in_segment("u1", "window_shoppers")
    story.advance(hours=1)  # the purchase left the 7-day window; the next top of the hour applies it
    assert story.in_segment("u1", "window_shoppers")


# 📍 Local buyers: > 5 location_searched for one province in 30 days; keeps that province (daily at 02:00) -------

def test_local_buyer_enters_at_two_in_the_morning_and_keeps_the_province(story: Story, engine: Engine) -> None:
    for _ in range(6):
        story.track("u1", "location_searched", province="Chiang Mai")
    for _ in range(3):
        story.track("u1", "location_searched", province="Bangkok")
    story.advance(hours=16)  # 01:00 next day
    assert not story.in_segment("u1", "local_buyers")
    story.advance(hours=1)  # 02:00
    assert story.in_segment("u1", "local_buyers")
    view = engine.user_view("u1")
    assert view is not None
    assert view["computed"]["segment_data"]["local_buyers"] == {"province": "Chiang Mai"}


def test_searches_spread_over_provinces_do_not_count(story: Story) -> None:
    for province in ["Bangkok", "Phuket", "Chiang Mai"] * 3:
        story.track("u1", "location_searched", province=province)
    story.advance(days=1)
    assert not story.in_segment("u1", "local_buyers")


def test_local_buyer_leaves_when_searches_age_past_thirty_days(story: Story) -> None:
    for _ in range(6):
        story.track("u1", "location_searched", province="Khon Kaen")
    story.advance(days=1)
    assert story.in_segment("u1", "local_buyers")
    story.advance(days=29)
    assert story.in_segment("u1", "local_buyers")
    story.advance(days=1)
    assert not story.in_segment("u1", "local_buyers")


# 🚨 Churn risk: no event for > 30 days, after >= 10 active days in the 60 days before the last activity (daily) -

def _active_days(story: Story, user: str, days: int) -> None:
    start = story.now - dt.timedelta(days=days)
    for d in range(days):
        story.track(user, "app_opened", at=start + dt.timedelta(days=d))


def test_engaged_user_going_quiet_becomes_churn_risk(story: Story) -> None:
    _active_days(story, "u1", 10)  # the last activity was yesterday 09:00
    story.advance(days=29)
    assert not story.in_segment("u1", "churn_risk")  # 30 days idle is not more than 30
    story.advance(hours=16, minutes=59)  # 01:59: idle for more than 30 days, but the daily refresh is at 02:00
    assert not story.in_segment("u1", "churn_risk")
    story.advance(minutes=1)
    assert story.in_segment("u1", "churn_risk")


def test_light_user_going_quiet_is_not_churn_risk(story: Story) -> None:
    _active_days(story, "u1", 9)
    story.advance(days=40)
    assert not story.in_segment("u1", "churn_risk")


def test_churn_risk_leaves_when_the_user_comes_back(story: Story) -> None:
    _active_days(story, "u1", 12)
    story.advance(days=33)
    assert story.in_segment("u1", "churn_risk")
    story.track("u1", "app_opened")
    story.advance(days=1)
    assert not story.in_segment("u1", "churn_risk")

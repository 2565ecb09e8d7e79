"""The three playbooks of SPEC.md 3 (CONTRACT.md 6), as stories on the manual clock (Mon 5 Jan 2026 09:00 ICT)."""

from __future__ import annotations

import datetime as dt

import pytest

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.scenarios.story import Story, messages

BKK = dt.timezone(dt.timedelta(hours=7))
CONSENT_ALL = {"push": True, "email": True, "sms": True, "in_app": True, "ads": True}


@pytest.fixture
def story(engine: Engine, clock: ManualClock) -> Story:
    return Story(engine, clock)


def shopper(story: Story, user: str = "u1", **traits: object) -> None:
    story.identify(user, email=f"{user}@example.test", push_token=f"tok-{user}", language="th",
                   consent=CONSENT_ALL, **traits)


def add_camera(story: Story, user: str = "u1", stock: int = 2) -> None:
    story.track(user, "add_to_cart", listing_id="L1", title="กล้องฟิล์ม Olympus OM-1", price=4500,
                image_url="https://img.jaikod.test/L1.jpg", stock=stock)


# Flow A: the nudge -----------------------------------------------------------------------------------------------

def test_cart_nudge_push_goes_one_hour_after_add_to_cart(story: Story, engine: Engine) -> None:
    shopper(story)
    add_camera(story)
    story.advance(minutes=59)
    assert messages(engine, "u1") == []
    story.advance(minutes=1)
    [push] = messages(engine, "u1")
    assert push["flow"] == "cart_abandonment" and push["channel"] == "push" and push["kind"] == "marketing"
    assert push["status"] == "sent"
    assert push["title"] == "ตะกร้าของคุณยังรออยู่ 🛒"
    assert "ลืมของไว้หรือเปล่า? 😲 กล้องฟิล์ม Olympus OM-1 รอคุณอยู่!" in push["body"]
    assert "เหลืออีกเพียง 2 ชิ้น" in push["body"], "low stock (<= 3) is flagged"
    assert push["imageUrl"] == "https://img.jaikod.test/L1.jpg"
    assert push["scheduledAt"] == push["sentAt"] == "2026-01-05T03:00:00Z"


def test_no_low_stock_warning_with_plenty_in_stock(story: Story, engine: Engine) -> None:
    shopper(story)
    add_camera(story, stock=10)
    story.advance(hours=1)
    [push] = messages(engine, "u1")
    assert "เหลือ" not in push["body"]


def test_the_whole_nudge_push_coupon_email_last_chance_modal(story: Story, engine: Engine) -> None:
    shopper(story)
    add_camera(story)
    story.advance(hours=24)  # T+24h
    _push, email = messages(engine, "u1")
    assert email["channel"] == "email" and email["status"] == "sent"
    assert email["subject"] == "ลดให้พิเศษ 5% เฉพาะคุณ 🏷️"
    assert email["coupon"] and email["coupon"] in email["body"]
    story.advance(hours=24)  # T+48h: the modal waits in the inbox for the next open
    inbox = story.engine.inbox("u1")
    assert inbox is not None
    [modal] = inbox
    assert modal.body.startswith("โอกาสสุดท้าย! คูปองของคุณจะหมดอายุใน 2 ชม."), modal.body
    assert modal.coupon == email["coupon"]
    read = story.engine.mark_read("u1", modal.id)
    assert read is not None and read.status == "opened"
    assert [m["channel"] for m in messages(engine, "u1")] == ["push", "email", "in_app"]


def test_purchase_of_the_item_ends_the_nudge(story: Story, engine: Engine) -> None:
    shopper(story)
    add_camera(story)
    story.advance(hours=2)
    story.track("u1", "purchase", order_id="O1", amount=4500, listing_ids=["L1"])
    story.advance(days=3)
    assert [m["channel"] for m in messages(engine, "u1")] == ["push"]


def test_buying_something_else_does_not_end_the_nudge(story: Story, engine: Engine) -> None:
    shopper(story)
    add_camera(story)
    story.advance(hours=2)
    story.track("u1", "purchase", order_id="O1", amount=900, listing_ids=["L9"])
    story.advance(days=1)
    assert [m["step"] for m in messages(engine, "u1", flow="cart_abandonment")] == ["nudge_push", "coupon_email"]


def test_one_run_per_cart_item(story: Story, engine: Engine) -> None:
    shopper(story)
    add_camera(story)
    story.track("u1", "add_to_cart", listing_id="L2", title="iPhone 12", price=9000, stock=5)
    story.advance(hours=1)
    with engine.store.transaction() as tx:
        assert sorted(r.entity for r in tx.runs.for_user("u1") if r.flow == "cart_abandonment") == ["L1", "L2"]
    pushes = messages(engine, "u1", channel="push")
    # One nudge per item, both due at 10:00; the daily cap lets exactly one of them go.
    assert len(pushes) == 2
    assert sorted((p["status"], p.get("reason")) for p in pushes) == [("sent", None), ("suppressed", "frequency_cap")]
    assert {("Olympus" in p["body"], "iPhone 12" in p["body"]) for p in pushes} == {(True, False), (False, True)}


def test_no_consent_no_marketing(story: Story, engine: Engine) -> None:
    story.identify("u1", push_token="tok", consent={"push": False})
    add_camera(story)
    story.advance(hours=1)
    [push] = messages(engine, "u1")
    assert (push["status"], push["reason"]) == ("suppressed", "consent")


def test_push_in_quiet_hours_waits_until_eight(story: Story, engine: Engine) -> None:
    shopper(story)
    story.advance_to(dt.datetime(2026, 1, 5, 22, 30, tzinfo=BKK))
    add_camera(story)
    story.advance(hours=1)  # due 23:30 local: quiet hours
    [push] = messages(engine, "u1")
    assert (push["status"], push["reason"]) == ("scheduled", "quiet_hours")
    assert push["scheduledAt"] == "2026-01-06T01:00:00Z"  # 08:00 Bangkok
    story.advance_to(dt.datetime(2026, 1, 6, 8, 0, tzinfo=BKK))
    [push] = messages(engine, "u1")
    assert (push["status"], push["reason"], push["sentAt"]) == ("sent", "quiet_hours", "2026-01-06T01:00:00Z")


# Flow B: price drop ----------------------------------------------------------------------------------------------

def test_price_drop_over_ten_percent_pushes_every_favoriter(story: Story, engine: Engine) -> None:
    story.track("seller", "listing_created", listing_id="L7", title="Fuji X100V", price=30000, category="cameras",
                image_url="https://img.jaikod.test/L7.jpg")
    for n in range(5):
        shopper(story, f"fan{n}")
        story.track(f"fan{n}", "favorite_added", listing_id="L7")
    story.track("fan4", "favorite_removed", listing_id="L7")
    story.track("seller", "listing_price_changed", listing_id="L7", old_price=30000, new_price=27500)
    assert messages(engine) == [], "8.3 % is not a drop over 10 %"
    story.track("seller", "listing_price_changed", listing_id="L7", old_price=27500, new_price=24000)
    sent = messages(engine, flow="price_drop")
    assert sorted(m["userId"] for m in sent) == ["fan0", "fan1", "fan2", "fan3"]
    assert sent[0]["body"].startswith("ราคาลงแล้ว! Fuji X100V เหลือเพียง ฿24,000 (จาก ฿27,500) 🔥")
    assert all(m["status"] == "sent" for m in sent)


# Flow C: seller coach --------------------------------------------------------------------------------------------

def test_seller_without_a_listing_after_three_days_is_coached(story: Story, engine: Engine) -> None:
    shopper(story, "s1", is_seller=True)
    story.track("s1", "seller_registered")
    story.advance(days=2, hours=23)
    assert messages(engine, "s1") == []
    story.advance(hours=1)
    first = messages(engine, "s1")
    assert [m["channel"] for m in first] == ["in_app", "email"]
    assert first[1]["subject"] == "3 เคล็ดลับถ่ายรูปให้ขายออกไว 📸"
    story.advance(days=6)
    assert [m["step"] for m in messages(engine, "s1")] == ["coach_in_app", "coach_email_1", "coach_email_2",
                                                           "coach_email_3"]


def test_a_first_listing_ends_the_coaching(story: Story, engine: Engine) -> None:
    shopper(story, "s1", is_seller=True)
    story.track("s1", "seller_registered")
    story.advance(days=1)
    story.track("s1", "listing_created", listing_id="L1", title="เสื้อ", price=100, category="fashion")
    story.advance(days=10)
    assert messages(engine, "s1") == []

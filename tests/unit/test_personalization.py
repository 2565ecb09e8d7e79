"""User context from behaviour (category affinity, price sensitivity) and copy validation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from growthengine.clock import to_us
from growthengine.content.templates import load_default_templates
from growthengine.domain.events import Event
from growthengine.optimize.copy_variants import render_slots, text_length, validate_variant
from growthengine.optimize.personalization import ContextConfig, build_context

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MEDIANS = {"cameras": 8500.0, "phones": 9000.0, "fashion": 650.0}


def ev(name: str, days_ago: float, **props: Any) -> Event:
    return Event("u1", name, to_us(NOW - dt.timedelta(days=days_ago)), properties=props)


def views(category: str, n: int, *, price: float, start: float = 1.0) -> list[Event]:
    return [ev("item_viewed", start + i * 0.5, listing_id=f"{category}-{i}", category=category, price=price)
            for i in range(n)]


def test_camera_lover_from_views_favourites_and_purchases() -> None:
    events = views("cameras", 8, price=9000) + views("fashion", 3, price=700)
    events += [ev("favorite_added", 2, listing_id="cameras-1"), ev("purchase", 3, listing_ids=["cameras-2"])]
    context = build_context(events, now=NOW, category_medians=MEDIANS)
    assert context.tags == ["loves_cameras"]
    reason = context.reasons[0]
    assert reason.tag == "loves_cameras" and "cameras" in reason.reason
    assert reason.inputs["share"] > 0.6
    # the favourite and the purchase found their category through the user's own views
    assert context.inputs["interest"]["cameras"] > 8 + 3 + 5 - 1


def test_price_sensitive_from_coupons_price_drops_and_cheap_views() -> None:
    events = views("phones", 6, price=3500)  # 39 % of the category median
    events += [ev("purchase", 5, listing_ids=["phones-1"], coupon="SAVE5-XYZ"),
               ev("purchase", 9, listing_ids=["phones-2"], coupon_code="SAVE10-ABC"),
               ev("message_clicked", 4, message_id="m1", flow="price_drop_alert"),
               ev("message_opened", 6, message_id="m2", template="price_drop_push")]
    context = build_context(events, now=NOW, category_medians=MEDIANS)
    assert "price_sensitive" in context.tags
    why = next(r for r in context.reasons if r.tag == "price_sensitive")
    assert "coupons on 2 of 2 purchases" in why.reason
    assert why.inputs["signals"]["cheap_views"]["value"] == 1.0
    assert context.as_dict()["reasons"]["price_sensitive"]["inputs"]["sensitivity"] >= 0.5


def test_a_full_price_shopper_without_coupons_is_not_price_sensitive() -> None:
    events = [*views("phones", 6, price=12_000), ev("purchase", 5, listing_ids=["phones-1"])]
    context = build_context(events, now=NOW, category_medians=MEDIANS)
    assert "price_sensitive" not in context.tags
    assert context.inputs["price_sensitivity"] < 0.5


def test_scattered_interest_gives_no_love_tag_and_thin_history_none() -> None:
    scattered = views("cameras", 3, price=9000) + views("phones", 3, price=9000) + views("fashion", 3, price=600)
    assert build_context(scattered, now=NOW, category_medians=MEDIANS).tags == []
    assert build_context(views("cameras", 2, price=9000), now=NOW).tags == []  # under love_min points
    assert build_context([], now=NOW).tags == []


def test_recent_interest_outweighs_old_interest() -> None:
    old = views("cameras", 12, price=9000, start=200)
    recent = views("phones", 8, price=9000)
    context = build_context(old + recent, now=NOW, config=ContextConfig(half_life=dt.timedelta(days=30)))
    assert context.tags == ["loves_phones"]


def test_events_after_now_are_ignored_and_listing_lookup_is_used() -> None:
    future = [ev("item_viewed", -1, listing_id=f"x{i}", category="cameras") for i in range(20)]
    assert build_context(future, now=NOW).tags == []
    favourites = [ev("favorite_added", i, listing_id="L9") for i in range(3)]
    context = build_context(favourites, now=NOW, listing_categories={"L9": "cameras"})
    assert context.tags == ["loves_cameras"]


def test_context_tags_choose_the_templates_variants() -> None:
    registry = load_default_templates()
    camera = build_context(views("cameras", 10, price=9000), now=NOW, category_medians=MEDIANS)
    assert registry.choose_variant("camera_promo_push", camera.tags) == "camera_lover"
    bargain = build_context([*views("fashion", 6, price=200), ev("purchase", 2, coupon="C1", listing_ids=[])],
                            now=NOW, category_medians=MEDIANS)
    assert "price_sensitive" in bargain.tags
    assert registry.choose_variant("camera_promo_push", [t for t in bargain.tags if not t.startswith("loves")]) \
        == "price_sensitive"


# ---- validation -----------------------------------------------------------------------------------------------

GOOD = "อัปเกรดเลนส์ใหม่? กล้องฟิล์ม Nikon FM2 เพียง ฿4,500 ใช้โค้ด SAVE5-XYZ แตะดูก่อนใครเลย 📸"


def test_a_good_thai_push_passes() -> None:
    assert validate_variant(GOOD, ["฿4,500", "SAVE5-XYZ"], "push") == []


@pytest.mark.parametrize(("text", "facts", "problem"), [
    (GOOD.replace("฿4,500", "฿4,000"), ["฿4,500"], "required fact '฿4,500'"),
    (GOOD.replace("SAVE5-XYZ", "save5-xyz"), ["SAVE5-XYZ"], "required fact 'SAVE5-XYZ'"),
    ("Upgrade your lens? Nikon FM2 for ฿4,500", ["฿4,500"], "Thai copy without Thai script"),
    (GOOD + " {{ product }}", [], "unresolved placeholder '{{ product }}'"),
    ("ลดล้างสต็อก! [Product] เริ่มต้น 500.-", [], "unresolved placeholder '[Product]'"),
    ("ลดล้างสต็อก! {product_name} เริ่มต้น 500.-", [], "unresolved placeholder '{product_name}'"),
    ("ลดล้างสต็อก! {% if x %}", [], "unresolved placeholder"),
    ("ก" * 179, [], "179 characters, over the push limit of 178"),
    ("   ", [], "the text is empty"),
])
def test_problems_are_named(text: str, facts: list[str], problem: str) -> None:
    problems = validate_variant(text, facts, "push")
    assert any(problem in p for p in problems), problems


def test_length_limits_per_channel() -> None:
    assert validate_variant("ก" * 178, [], "push") == []
    assert validate_variant("ก" * 70, [], "sms") == []
    assert validate_variant("ก" * 71, [], "sms") == ["71 characters, over the sms limit of 70"]
    assert validate_variant("Sale " * 32, [], "sms", language="en") == []  # 160 GSM-7 characters: one segment
    assert text_length("ลด 😀", "sms") == 5  # an emoji is two UTF-16 units
    assert validate_variant("ก" * 50, [], "push", max_length=40) == ["50 characters, over the push limit of 40"]
    assert validate_variant("Hello there", [], "email", language="en") == []


def test_render_slots_fills_known_names_only() -> None:
    assert render_slots("{{ product }} เพียง {{price}}", {"product": "Leica M6", "price": "฿45,000"}) == \
        "Leica M6 เพียง ฿45,000"
    assert render_slots("{{ coupon }}", {}) == "{{ coupon }}"

"""Message templates: Thai-first copy exactly as the contract writes it, formatting, strictness and the sandbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from growthengine.config.errors import ConfigError
from growthengine.content.formatting import format_baht, format_date, format_datetime, format_time_left
from growthengine.content.templates import (
    RenderError,
    TemplateNotFound,
    TemplateRegistry,
    load_default_templates,
)

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 12:00 in Bangkok


@pytest.fixture(scope="module")
def registry() -> TemplateRegistry:
    return load_default_templates()


def coupon(expires_in: dt.timedelta) -> dict[str, Any]:
    return {"code": "SAVE5-7KQ2XM", "type": "percent", "value": Decimal(5), "expires_at": NOW + expires_in}


# ---- golden renders: the contract's Thai copy, emoji included ------------------------------------------------


def test_cart_nudge_push_in_thai_with_image_and_low_stock(registry: TemplateRegistry) -> None:
    msg = registry.render("cart_nudge_push", "th", {
        "product": "กล้อง Fujifilm X100V", "image_url": "https://img.jaikod.com/l/1.jpg", "stock": 2,
    })
    assert msg.title == "ตะกร้าของคุณยังรออยู่ 🛒"
    assert msg.body == "ลืมของไว้หรือเปล่า? 😲 กล้อง Fujifilm X100V รอคุณอยู่!\n⚠️ เหลืออีกเพียง 2 ชิ้นเท่านั้น รีบก่อนหมด!"
    assert msg.image_url == "https://img.jaikod.com/l/1.jpg"
    assert (msg.subject, msg.html) == (None, None)


@pytest.mark.parametrize(("stock", "warned"), [(3, True), (1, True), (4, False), (50, False)])
def test_cart_nudge_warns_of_low_stock_only_at_three_or_fewer(
    registry: TemplateRegistry, stock: int, warned: bool
) -> None:
    msg = registry.render("cart_nudge_push", "th", {"product": "Leica M6", "stock": stock})
    assert ("⚠️" in msg.body) is warned
    assert msg.body.startswith("ลืมของไว้หรือเปล่า? 😲 Leica M6 รอคุณอยู่!")


def test_cart_nudge_without_stock_or_image(registry: TemplateRegistry) -> None:
    msg = registry.render("cart_nudge_push", "th", {"product": "Leica M6"})
    assert msg.body == "ลืมของไว้หรือเปล่า? 😲 Leica M6 รอคุณอยู่!"
    assert msg.image_url is None


def test_cart_nudge_push_in_english(registry: TemplateRegistry) -> None:
    msg = registry.render("cart_nudge_push", "en", {"product": "Leica M6", "stock": 1})
    assert msg.title == "Your cart is waiting 🛒"
    assert msg.body == "Forgot something? 😲 Leica M6 is waiting for you!\n⚠️ Only 1 left. Grab it before it's gone!"


def test_cart_coupon_email_in_thai(registry: TemplateRegistry) -> None:
    msg = registry.render("cart_coupon_email", "th", {
        "product": "Leica M6", "coupon": coupon(dt.timedelta(hours=24)), "name": "สมชาย",
    })
    assert msg.subject == "ลดให้พิเศษ 5% เฉพาะคุณ 🏷️"
    assert msg.body == (
        "สวัสดีคุณสมชาย\n\n"
        "Leica M6 ยังรอคุณอยู่ในตะกร้า เราจึงมอบส่วนลด 5% ให้คุณคนเดียว 🏷️\n\n"
        "โค้ดส่วนลด: SAVE5-7KQ2XM\n"
        "ใช้ได้ถึง: 26 พ.ย. 2569 12:00\n\n"
        "กลับไปที่ตะกร้า: https://jaikod.com/cart"
    )
    assert msg.html is not None
    assert "SAVE5-7KQ2XM" in msg.html and '<html lang="th">' in msg.html
    assert "ใช้ได้ถึง 26 พ.ย. 2569 12:00" in msg.html


def test_cart_coupon_email_in_english_uses_the_users_timezone(registry: TemplateRegistry) -> None:
    msg = registry.render("cart_coupon_email", "en", {
        "product": "Leica M6", "coupon": coupon(dt.timedelta(hours=24)), "timezone": "Europe/London",
    })
    assert msg.subject == "A special 5% off, just for you 🏷️"
    assert "Hi there," in msg.body
    assert "Valid until: 26 Nov 2026, 05:00" in msg.body


def test_last_chance_modal_states_the_time_left_truthfully(registry: TemplateRegistry) -> None:
    msg = registry.render("cart_last_chance_modal", "th", {"coupon": coupon(dt.timedelta(hours=2)), "now": NOW})
    assert msg.body == "โอกาสสุดท้าย! คูปองของคุณจะหมดอายุใน 2 ชม.\nใช้โค้ด SAVE5-7KQ2XM ที่หน้าชำระเงินได้เลย 🛒"
    later = registry.render("cart_last_chance_modal", "th", {"coupon": coupon(dt.timedelta(minutes=45)), "now": NOW})
    assert later.body.startswith("โอกาสสุดท้าย! คูปองของคุณจะหมดอายุใน 45 นาที\n")
    english = registry.render("cart_last_chance_modal", "en", {"coupon": coupon(dt.timedelta(hours=2)), "now": NOW})
    assert english.body.startswith("Last chance! Your coupon expires in 2 hours.\n")


def test_last_chance_modal_never_promises_time_on_an_expired_coupon(registry: TemplateRegistry) -> None:
    msg = registry.render("cart_last_chance_modal", "th", {"coupon": coupon(dt.timedelta(0)), "now": NOW})
    assert "โอกาสสุดท้าย" not in msg.body
    assert msg.body == "คูปองของคุณหมดอายุแล้ว แต่ของในตะกร้ายังรอคุณอยู่ 🛒"


def test_price_drop_push(registry: TemplateRegistry) -> None:
    context = {"product": "iPhone 13", "new_price": 12500, "old_price": Decimal("15990.5")}
    assert registry.render("price_drop_push", "th", context).body == (
        "ราคาลงแล้ว! iPhone 13 เหลือเพียง ฿12,500 (จาก ฿15,990.50) 🔥"
    )
    assert registry.render("price_drop_push", "en", context).body == (
        "Price drop! iPhone 13 is now only ฿12,500 (was ฿15,990.50) 🔥"
    )


def test_seller_coach_series(registry: TemplateRegistry) -> None:
    first = registry.render("seller_coach_email", "th", {})
    assert first.subject == "3 เคล็ดลับถ่ายรูปให้ขายออกไว 📸"
    assert "https://jaikod.com/guides/photo-tips" in first.body
    assert first.html is not None and 'href="https://jaikod.com/guides/photo-tips"' in first.html
    in_app = registry.render("seller_coach_in_app", "th", {"guide_url": "https://jaikod.com/blog/photos"})
    assert in_app.title == "3 เคล็ดลับถ่ายรูปให้ขายออกไว 📸"
    assert in_app.body.endswith("👉 https://jaikod.com/blog/photos")
    for key in ("seller_coach_email_2", "seller_coach_email_3"):
        assert registry.render(key, "th", {}).subject


def test_weekly_digest_renders_one_card_per_product(registry: TemplateRegistry) -> None:
    products = [
        {"listing_id": "L1", "title": "Leica M6", "price": Decimal(45000), "image_url": "https://img/1.jpg"},
        {"listing_id": "L2", "title": "Fuji <X100>", "price": Decimal("1234.5"), "url": "https://jaikod.com/x/2"},
    ]
    msg = registry.render("weekly_digest_email", "th", {"products": products})
    assert msg.subject == "Weekly For You: ของดีที่เราคัดมาให้คุณ ✨"
    assert msg.body == (
        "สวัสดีค่ะ\n\n"
        "Weekly For You: ของดีประจำสัปดาห์ที่เราคัดมาให้คุณ ✨\n\n"
        "• Leica M6 — ฿45,000\n"
        "  https://jaikod.com/listing/L1\n\n"
        "• Fuji <X100> — ฿1,234.50\n"
        "  https://jaikod.com/x/2\n\n"
        "ดูเพิ่มเติม: https://jaikod.com"
    )
    assert msg.html is not None
    assert msg.html.count("<table") == 2
    assert "Fuji &lt;X100&gt;" in msg.html and "<X100>" not in msg.html


def test_default_campaigns_exist_for_each_segment_goal(registry: TemplateRegistry) -> None:
    assert registry.render("local_buyers_nearby_push", "th", {"province": "เชียงใหม่"}).body == (
        "มีของมือสองลงขายใหม่ใน เชียงใหม่ เพียบ! นัดรับใกล้บ้าน ไม่ต้องรอขนส่ง 🚗"
    )
    for key in ("churn_winback_email", "window_shopper_first_buy_push", "high_ltv_vip_email"):
        th, en = registry.render(key, "th", {}), registry.render(key, "en", {})
        assert th.body and en.body and th.body != en.body


# ---- variants (SPEC 4.B) -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("user_context", "variant", "body"), [
    (["Loves Cameras"], "camera_lover",
     "อัปเกรดเลนส์ใหม่? ส่องโปรกล้องฟิล์มสภาพนางฟ้า Nikon FM2 เพียง ฿6,500 แตะดูก่อนใครเลย 📸"),
    (["sensitive_to_price"], "price_sensitive", "ลดล้างสต็อก! กล้องมือสองเริ่มต้น 500.- รีบช้อปก่อนหมด 🛒"),
    ([], "default", "กล้องมือสองสภาพดีมาใหม่! Nikon FM2 ราคา ฿6,500 แตะเพื่อดูรายละเอียด 👉"),
])
def test_variants_are_chosen_by_user_context(
    registry: TemplateRegistry, user_context: list[str], variant: str, body: str
) -> None:
    context = {"product": "Nikon FM2", "price": 6500, "from_price": 500, "user_context": user_context}
    msg = registry.render("camera_promo_push", "th", context)
    assert (msg.variant, msg.body) == (variant, body)


def test_a_variant_can_be_asked_for_by_name(registry: TemplateRegistry) -> None:
    context = {"product": "Nikon FM2", "price": 6500, "from_price": 500}
    assert registry.render("camera_promo_push", "en", context, variant="price_sensitive").body == (
        "Clearance sale! Second-hand cameras from ฿500 Shop before they're gone 🛒"
    )
    assert registry.get("camera_promo_push").variants == ("default", "camera_lover", "price_sensitive")
    with pytest.raises(RenderError, match="no variant 'nope'"):
        registry.render("camera_promo_push", "th", context, variant="nope")


# ---- languages, variables -----------------------------------------------------------------------------------


def test_unknown_language_falls_back_to_thai(registry: TemplateRegistry) -> None:
    context = {"product": "Leica M6"}
    for language in ("fr", None, "", "zz-ZZ"):
        msg = registry.render("cart_nudge_push", language, context)
        assert msg.language == "th" and msg.body.startswith("ลืมของไว้หรือเปล่า?")
    assert registry.render("cart_nudge_push", "en-GB", context).language == "en"


def test_variables_a_template_uses(registry: TemplateRegistry) -> None:
    assert registry.variables("price_drop_push") == {"product", "new_price", "old_price", "image_url"}
    assert registry.get("price_drop_push").required_variables == {"product", "new_price", "old_price"}
    assert registry.variables("cart_last_chance_modal") == {"coupon", "now", "image_url", "coupon_seen"}
    assert registry.missing_variables("cart_coupon_email", ["product"]) == {"coupon"}
    assert registry.variables("weekly_digest_email") == {"products", "site_url", "name"}
    with pytest.raises(TemplateNotFound):
        registry.variables("nope")


def test_every_default_template_has_thai_and_english(registry: TemplateRegistry) -> None:
    assert len(registry.keys()) >= 14
    for key in registry.keys():
        assert registry.get(key).languages == ("th", "en"), key


# ---- strictness and the sandbox -----------------------------------------------------------------------------


def test_a_missing_variable_is_an_error_never_blank_text(registry: TemplateRegistry) -> None:
    with pytest.raises(RenderError, match="new_price"):
        registry.render("price_drop_push", "th", {"product": "iPhone 13", "old_price": 15990})
    with pytest.raises(RenderError, match="coupon"):
        registry.render("cart_coupon_email", "th", {"product": "x"})


def test_a_value_a_filter_cannot_format_is_an_error(registry: TemplateRegistry) -> None:
    with pytest.raises(RenderError, match="price_drop_push"):
        registry.render("price_drop_push", "th", {"product": "x", "new_price": "cheap", "old_price": 10})


def tiny(body: str, channel: str = "push") -> TemplateRegistry:
    title = "\n      title: t" if channel in ("push", "in_app") else ""
    text = f"templates:\n  t:\n    channel: {channel}\n    th:{title}\n      body: {body!r}\n"
    return TemplateRegistry.from_yaml(text)


@pytest.mark.parametrize("body", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ product.__init__.__globals__ }}",
    "{{ items.append(1) }}",
    "{{ (1).__class__.__base__ }}",
])
def test_the_sandbox_refuses_attribute_tricks(body: str) -> None:
    with pytest.raises(RenderError):
        tiny(body).render("t", "th", {"product": object(), "items": []})


def test_only_html_email_bodies_are_autoescaped() -> None:
    registry = TemplateRegistry.from_yaml(
        "templates:\n  e:\n    channel: email\n    th:\n      subject: '{{ x }}'\n      body: '{{ x }}'\n"
        "      html: '<p>{{ x }}</p>'\n"
    )
    msg = registry.render("e", "th", {"x": "<b>A & B</b>"})
    assert (msg.subject, msg.body) == ("<b>A & B</b>", "<b>A & B</b>")
    assert msg.html == "<p>&lt;b&gt;A &amp; B&lt;/b&gt;</p>"
    assert tiny("{{ x }}").render("t", "th", {"x": "<i>"}).body == "<i>"


def test_seller_supplied_links_must_be_http(registry: TemplateRegistry) -> None:
    msg = registry.render("cart_nudge_push", "th", {"product": "x", "image_url": "javascript:alert(1)"})
    assert msg.image_url is None


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("templates:\n  t:\n    channel: fax\n    th: {body: x}\n", "channel: must be one of"),
    ("templates:\n  t:\n    channel: push\n    en: {title: t, body: x}\n", "Thai copy (th) is required"),
    ("templates:\n  t:\n    channel: email\n    th: {subject: s, body: x}\n", "needs 'html'"),
    ("templates:\n  t:\n    channel: sms\n    th: {title: t, body: x}\n", "has no 'title'"),
])
def test_bad_template_files_name_the_line_and_path(yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TemplateRegistry.from_yaml(yaml_text, file="custom.yaml")
    text = str(info.value)
    assert message in text and text.startswith("custom.yaml:") and "templates.t" in text


# ---- formatting ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "text"), [
    (12500, "฿12,500"),
    (Decimal("12500.00"), "฿12,500"),
    (Decimal("1234.5"), "฿1,234.50"),
    (1234.5, "฿1,234.50"),
    ("999", "฿999"),
    (0, "฿0"),
    (Decimal("0.5"), "฿0.50"),
    (1_000_000, "฿1,000,000"),
    (Decimal("19.999"), "฿20"),
    (-150, "-฿150"),
])
def test_baht_amounts(amount: object, text: str) -> None:
    assert format_baht(amount) == text


@pytest.mark.parametrize(("instant", "language", "tz", "text"), [
    (dt.datetime(2026, 11, 25, 7, 30, tzinfo=UTC), "th", None, "25 พ.ย. 2569 14:30"),
    (dt.datetime(2026, 11, 25, 7, 30, tzinfo=UTC), "en", None, "25 Nov 2026, 14:30"),
    (dt.datetime(2026, 12, 31, 17, 5, tzinfo=UTC), "th", None, "1 ม.ค. 2570 00:05"),
    ("2026-04-13T03:00:00Z", "th", None, "13 เม.ย. 2569 10:00"),
    (dt.datetime(2026, 11, 25, 7, 30, tzinfo=UTC), "en", "America/New_York", "25 Nov 2026, 02:30"),
    (dt.datetime(2026, 11, 25, 7, 30, tzinfo=UTC), "th", "Not/AZone", "25 พ.ย. 2569 14:30"),
])
def test_dates_are_in_bangkok_time_with_the_buddhist_era_in_thai(
    instant: object, language: str, tz: str | None, text: str
) -> None:
    assert format_datetime(instant, language, tz) == text


def test_date_alone() -> None:
    instant = dt.datetime(2026, 2, 1, 18, 0, tzinfo=UTC)
    assert (format_date(instant, "th"), format_date(instant, "en")) == ("2 ก.พ. 2569", "2 Feb 2026")


@pytest.mark.parametrize(("left", "th", "en"), [
    (dt.timedelta(hours=2), "2 ชม.", "2 hours"),
    (dt.timedelta(hours=2, minutes=59, seconds=59), "2 ชม.", "2 hours"),
    (dt.timedelta(hours=1, minutes=30), "1 ชม. 30 นาที", "1 hour 30 minutes"),
    (dt.timedelta(hours=1), "1 ชม.", "1 hour"),
    (dt.timedelta(minutes=45, seconds=59), "45 นาที", "45 minutes"),
    (dt.timedelta(minutes=1), "1 นาที", "1 minute"),
    (dt.timedelta(seconds=59), "ไม่ถึง 1 นาที", "less than a minute"),
    (dt.timedelta(days=1, hours=6, minutes=10), "1 วัน 6 ชม.", "1 day 6 hours"),
    (dt.timedelta(days=3, hours=5), "3 วัน", "3 days"),
    (dt.timedelta(0), "หมดอายุแล้ว", "expired"),
    (dt.timedelta(minutes=-5), "หมดอายุแล้ว", "expired"),
])
def test_time_left_is_rounded_down_never_up(left: dt.timedelta, th: str, en: str) -> None:
    assert format_time_left(NOW + left, NOW, "th") == th
    assert format_time_left(NOW + left, NOW, "en") == en

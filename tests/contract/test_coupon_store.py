"""The embedded coupon engine behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest

from growthengine.clock import ManualClock
from growthengine.content.coupons import (
    CouponAlreadyRedeemed,
    CouponExpired,
    CouponNotFound,
    CouponNotYours,
    CouponRequest,
    EmbeddedCouponEngine,
    InvalidCouponRequest,
)
from growthengine.engine import Engine

CODE = re.compile(r"^SAVE5-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{6}$")


@pytest.fixture
def coupons(any_engine: Engine, clock: ManualClock) -> EmbeddedCouponEngine:
    return EmbeddedCouponEngine(any_engine.store, clock)


def five_percent(user_id: str = "u1") -> CouponRequest:
    return CouponRequest.build(user_id, type="percent", value=5, expiry="24h")


def test_generate_issues_a_stored_human_friendly_coupon(coupons: EmbeddedCouponEngine, clock: ManualClock) -> None:
    coupon = coupons.generate(five_percent())
    assert CODE.match(coupon.code), coupon.code
    assert (coupon.user_id, coupon.type, coupon.value) == ("u1", "percent", Decimal(5))
    assert coupon.created_at == clock.now()
    assert coupon.expires_at == clock.now() + dt.timedelta(hours=24)
    assert coupon.redeemed_at is None
    assert coupons.get(coupon.code) == coupon
    assert coupons.get(coupon.code.lower()) == coupon
    assert coupons.get("SAVE5-NOPE22") is None


def test_codes_are_unique_across_many(coupons: EmbeddedCouponEngine) -> None:
    codes = {coupons.generate(five_percent(f"u{i % 7}")).code for i in range(300)}
    assert len(codes) == 300


def test_a_taken_code_is_never_issued_twice(any_engine: Engine, clock: ManualClock) -> None:
    parts: Iterator[str] = iter(["AAAAAA", "AAAAAA", "AAAAAA", "BBBBBB"])
    engine = EmbeddedCouponEngine(any_engine.store, clock, code_part=lambda: next(parts))
    first = engine.generate(five_percent("u1"))
    second = engine.generate(five_percent("u2"))
    assert (first.code, second.code) == ("SAVE5-AAAAAA", "SAVE5-BBBBBB")
    assert engine.get("SAVE5-AAAAAA") is not None and engine.get("SAVE5-AAAAAA").user_id == "u1"  # type: ignore[union-attr]


def test_the_same_key_gives_the_same_coupon(coupons: EmbeddedCouponEngine, clock: ManualClock) -> None:
    key = "cart_abandonment:u1:L1:coupon"
    first = coupons.generate(five_percent(), key=key)
    clock.set(clock.now() + dt.timedelta(minutes=5))
    again = coupons.generate(five_percent(), key=key)
    assert again == first
    assert coupons.generate(five_percent(), key="another").code != first.code


def test_other_kinds_of_coupon(coupons: EmbeddedCouponEngine, clock: ManualClock) -> None:
    amount = coupons.generate(CouponRequest.build("u1", type="amount", value="100", expiry="7d"))
    assert amount.code.startswith("THB100-")
    assert amount.expires_at == clock.now() + dt.timedelta(days=7)
    fractional = coupons.generate(CouponRequest.build("u1", value=7.5, expiry=dt.timedelta(minutes=90)))
    assert fractional.code.startswith("SAVE7P5-") and fractional.value == Decimal("7.5")
    assert fractional.expires_at == clock.now() + dt.timedelta(minutes=90)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"value": 0}, "positive"),
    ({"value": 150}, "more than 100"),
    ({"value": "five"}, "must be a number"),
    ({"type": "bogo"}, "type must be one of"),
    ({"expiry": "tomorrow"}, "expiry"),
    ({"expiry": dt.timedelta(0)}, "future"),
])
def test_nonsense_requests_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidCouponRequest, match=message):
        CouponRequest.build("u1", **kwargs)  # type: ignore[arg-type]


def test_redeem_before_expiry(coupons: EmbeddedCouponEngine, clock: ManualClock) -> None:
    coupon = coupons.generate(five_percent())
    clock.set(coupon.expires_at - dt.timedelta(seconds=1))
    redeemed = coupons.redeem(coupon.code.lower(), user_id="u1", order_id="o-1", at=clock.now())
    assert redeemed.redeemed_at == clock.now() and redeemed.order_id == "o-1"
    assert coupons.get(coupon.code) == redeemed


def test_an_expired_coupon_is_refused(coupons: EmbeddedCouponEngine, clock: ManualClock) -> None:
    coupon = coupons.generate(five_percent())
    clock.set(clock.now() + dt.timedelta(hours=24))
    with pytest.raises(CouponExpired, match="expired at"):
        coupons.redeem(coupon.code, user_id="u1", order_id="o-1", at=clock.now())
    clock.set(clock.now() + dt.timedelta(days=3))
    with pytest.raises(CouponExpired):
        coupons.redeem(coupon.code, user_id="u1", order_id="o-1", at=clock.now())
    stored = coupons.get(coupon.code)
    assert stored is not None and stored.redeemed_at is None


def test_redeeming_twice_is_refused(coupons: EmbeddedCouponEngine, clock: ManualClock) -> None:
    coupon = coupons.generate(five_percent())
    first = coupons.redeem(coupon.code, user_id="u1", order_id="o-1", at=clock.now())
    with pytest.raises(CouponAlreadyRedeemed):
        coupons.redeem(coupon.code, user_id="u1", order_id="o-2", at=clock.now())
    # Retrying the same order (say after a crash) is not a second use: it answers the first redemption.
    assert coupons.redeem(coupon.code, user_id="u1", order_id="o-1", at=clock.now()) == first


def test_another_users_coupon_is_refused(coupons: EmbeddedCouponEngine, clock: ManualClock) -> None:
    coupon = coupons.generate(five_percent("u1"))
    with pytest.raises(CouponNotYours, match="another user"):
        coupons.redeem(coupon.code, user_id="u2", order_id="o-9", at=clock.now())
    stored = coupons.get(coupon.code)
    assert stored is not None and stored.redeemed_at is None


def test_an_unknown_code_is_refused(coupons: EmbeddedCouponEngine, clock: ManualClock) -> None:
    with pytest.raises(CouponNotFound):
        coupons.redeem("SAVE5-ZZZZZZ", user_id="u1", order_id="o-1", at=clock.now())


def test_coupons_are_listed_per_user_and_live_in_the_unit_of_work(
    any_engine: Engine, coupons: EmbeddedCouponEngine, clock: ManualClock
) -> None:
    first = coupons.generate(five_percent("u1"))
    clock.set(clock.now() + dt.timedelta(hours=1))
    second = coupons.generate(five_percent("u1"))
    coupons.generate(five_percent("u2"))
    with any_engine.store.transaction() as tx:
        assert [r.code for r in tx.coupons.for_user("u1")] == [second.code, first.code]
        inside = coupons.generate_in(tx, five_percent("u3"), key="k-3")
    assert coupons.get(inside.code) == inside

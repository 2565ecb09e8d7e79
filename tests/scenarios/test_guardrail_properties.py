"""Property: over random users, consents, timezones, events and clock moves, no send ever breaks consent, a
frequency cap or quiet hours, and transactional messages are never held back by them."""

from __future__ import annotations

import datetime as dt
import itertools
import tempfile
import zoneinfo
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from growthengine.clock import ManualClock, from_us
from tests.conftest import START, make_engine

TIMEZONES = ["Asia/Bangkok", "Asia/Tokyo", "Europe/London", "America/New_York"]
CHANNELS = ["push", "email", "in_app"]
_ids = itertools.count()

user_strategy = st.fixed_dictionaries({
    "tz": st.sampled_from(TIMEZONES),
    "consent": st.fixed_dictionaries({c: st.booleans() for c in CHANNELS}),
})
step_strategy = st.one_of(
    st.fixed_dictionaries({"kind": st.just("cart"), "user": st.integers(0, 3), "listing": st.integers(0, 4)}),
    st.fixed_dictionaries({"kind": st.just("fav"), "user": st.integers(0, 3), "listing": st.integers(0, 4)}),
    st.fixed_dictionaries({"kind": st.just("drop"), "listing": st.integers(0, 4)}),
    st.fixed_dictionaries({"kind": st.just("seller"), "user": st.integers(0, 3)}),
    st.fixed_dictionaries({"kind": st.just("advance"), "minutes": st.integers(10, 60 * 30)}),
)


def _calls(step: dict[str, Any], prices: dict[int, int]) -> list[dict[str, Any]]:
    mid = f"g{next(_ids)}"
    if step["kind"] == "cart":
        return [{"type": "track", "userId": f"u{step['user']}", "event": "add_to_cart", "messageId": mid,
                 "properties": {"listing_id": f"L{step['listing']}", "title": "ของ", "price": 100, "stock": 2}}]
    if step["kind"] == "fav":
        return [{"type": "track", "userId": f"u{step['user']}", "event": "favorite_added", "messageId": mid,
                 "properties": {"listing_id": f"L{step['listing']}"}}]
    if step["kind"] == "seller":
        return [{"type": "track", "userId": f"u{step['user']}", "event": "seller_registered", "messageId": mid}]
    old = prices.get(step["listing"], 10000)
    prices[step["listing"]] = int(old * 0.8)
    return [{"type": "track", "userId": "shop", "event": "listing_price_changed", "messageId": mid,
             "properties": {"listing_id": f"L{step['listing']}", "old_price": old, "new_price": int(old * 0.8)}}]


ALL = {"push": True, "email": True, "in_app": True}
NONE = {"push": False, "email": False, "in_app": False}
BANGKOK_USERS = [{"tz": "Asia/Bangkok", "consent": ALL}] * 4


def cart(user: int, listing: int) -> dict[str, Any]:
    return {"kind": "cart", "user": user, "listing": listing}


def advance(minutes: int) -> dict[str, Any]:
    return {"kind": "advance", "minutes": minutes}


# Cases a random draw finds only now and then, kept so that every run tries them (the clock starts Mon 09:00 ICT).
EXAMPLES: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = [
    # Two carts of one user fall due together: one push slot for the day, two candidates.
    (BANGKOK_USERS, [cart(0, 0), cart(0, 1), advance(90)]),
    # A cart at 21:30 falls due at 22:30, inside quiet hours: held until 08:00, and only one push that day.
    (BANGKOK_USERS, [advance(750), cart(0, 0), advance(90), cart(0, 1), advance(600)]),
    # The same moments in four zones: 21:00 in Bangkok is 09:00 in New York, 14:00 in London, 23:00 in Tokyo.
    ([{"tz": tz, "consent": ALL} for tz in TIMEZONES], [advance(720), *[cart(u, u) for u in range(4)], advance(60),
                                                        *[cart(u, 4) for u in range(4)], advance(60 * 13)]),
    # A price drop fans out to favoriters who already had their push of the day, and to one without consent.
    ([*BANGKOK_USERS[:3], {"tz": "Asia/Bangkok", "consent": NONE}],
     [*[{"kind": "fav", "user": u, "listing": 2} for u in range(4)], cart(0, 0), advance(61),
      {"kind": "drop", "listing": 2}, {"kind": "drop", "listing": 2}]),
    # Seller coach emails and cart coupon emails pile up against the 3-a-week email cap.
    (BANGKOK_USERS, [{"kind": "seller", "user": 0}, cart(0, 0), advance(60 * 24), cart(0, 1), advance(60 * 24),
                     cart(0, 2), advance(60 * 24), cart(0, 3), advance(60 * 24 * 2)]),
]


def _with_examples(test: Any) -> Any:
    for users, steps in reversed(EXAMPLES):
        test = example(users=users, steps=steps)(test)
    return test


@settings(max_examples=25, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(users=st.lists(user_strategy, min_size=4, max_size=4), steps=st.lists(step_strategy, min_size=1, max_size=25))
@_with_examples
def test_no_send_breaks_consent_caps_or_quiet_hours(users: list[dict[str, Any]], steps: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock(START)
        engine = make_engine(f"sqlite:///{tmp}/g.db", clock, Path(tmp))
        try:
            engine.ingest([{"type": "identify", "userId": f"u{i}", "traits": {
                "timezone": u["tz"], "consent": u["consent"], "email": f"u{i}@example.test", "push_token": "t"}}
                for i, u in enumerate(users)])
            prices: dict[int, int] = {}
            for step in steps:
                if step["kind"] == "advance":
                    engine.advance(clock.now() + dt.timedelta(minutes=step["minutes"]))
                else:
                    assert not engine.ingest(_calls(step, prices)).rejected
            engine.advance(clock.now() + dt.timedelta(days=3))
            sent = [m for m in engine.messages(limit=100_000) if m.sent_us is not None]
        finally:
            engine.close()
    by_user = {f"u{i}": u for i, u in enumerate(users)}
    pushes: dict[tuple[str, dt.date], int] = {}
    for m in sent:
        user = by_user.get(m.user_id)
        assert user is not None
        if m.kind != "marketing":
            continue
        assert user["consent"][m.channel], f"{m.id} went to {m.user_id} on {m.channel} without consent"
        local = from_us(m.sent_us).astimezone(zoneinfo.ZoneInfo(user["tz"]))  # type: ignore[arg-type]
        if m.channel == "push":
            assert 8 <= local.hour < 22, f"push {m.id} at {local.isoformat()} in quiet hours"
            key = (m.user_id, local.date())
            pushes[key] = pushes.get(key, 0) + 1
            assert pushes[key] <= 1, f"two marketing pushes to {m.user_id} on {local.date()}"
        if m.channel == "email":
            window = [o for o in sent if o.user_id == m.user_id and o.channel == "email" and o.kind == "marketing"
                      and 0 <= m.sent_us - o.sent_us < 7 * 86_400_000_000]  # type: ignore[operator]
            assert len(window) <= 3, f"more than 3 marketing emails to {m.user_id} in 7 days"

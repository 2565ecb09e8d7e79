"""Every guardrail boundary of CONTRACT.md 6 and 7, as a story on the manual clock (Mon 5 Jan 2026 09:00 ICT).

Each edge is tested on both sides: the minute a quiet window opens and the minute it closes, the user's own
calendar day for the daily push cap, the rolling week of the email cap an hour before and at its end, a price
drop of exactly 10 % and a hair over, and a channel the user's ``consent`` does not mention.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.scenarios.story import Story, messages

BKK = ZoneInfo("Asia/Bangkok")
NEW_YORK = ZoneInfo("America/New_York")  # UTC-5 in January, twelve hours behind Bangkok
CONSENT_ALL = {"push": True, "email": True, "sms": True, "in_app": True, "ads": True}


@pytest.fixture
def story(engine: Engine, clock: ManualClock) -> Story:
    return Story(engine, clock)


def shopper(story: Story, user: str, **traits: object) -> None:
    traits.setdefault("consent", CONSENT_ALL)
    story.identify(user, email=f"{user}@example.test", push_token=f"tok-{user}", language="th", **traits)


def add_to_cart(story: Story, user: str, listing: str) -> None:
    story.track(user, "add_to_cart", listing_id=listing, title=f"กล้อง {listing}", price=4500, stock=9)


def favorite(story: Story, user: str, listing: str, price: float = 10000) -> None:
    story.track("seller", "listing_created", listing_id=listing, title=f"เลนส์ {listing}", price=price,
                category="cameras")
    story.track(user, "favorite_added", listing_id=listing)


def drop_price(story: Story, listing: str, old: float, new: float) -> None:
    story.track("seller", "listing_price_changed", listing_id=listing, old_price=old, new_price=new)


def utc(instant: dt.datetime) -> str:
    """An instant as the API writes it."""
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def statuses(engine: Engine, user: str, **filters: str) -> list[tuple[str, str | None]]:
    return [(m["status"], m.get("reason")) for m in messages(engine, user, **filters)]


# Quiet hours: no marketing push from 22:00 to 08:00 local; a held push goes at 08:00 -------------------------------

@pytest.mark.parametrize(("due", "goes"), [
    (dt.datetime(2026, 1, 6, 7, 59, tzinfo=BKK), dt.datetime(2026, 1, 6, 8, 0, tzinfo=BKK)),    # quiet: held
    (dt.datetime(2026, 1, 6, 8, 0, tzinfo=BKK), dt.datetime(2026, 1, 6, 8, 0, tzinfo=BKK)),     # open: at once
    (dt.datetime(2026, 1, 6, 21, 59, tzinfo=BKK), dt.datetime(2026, 1, 6, 21, 59, tzinfo=BKK)),  # open: at once
    (dt.datetime(2026, 1, 6, 22, 0, tzinfo=BKK), dt.datetime(2026, 1, 7, 8, 0, tzinfo=BKK)),    # quiet: next morning
], ids=["07:59-held", "08:00-sent", "21:59-sent", "22:00-held"])
def test_a_nudge_due_at_the_edge_of_quiet_hours(story: Story, engine: Engine, due: dt.datetime,
                                                goes: dt.datetime) -> None:
    shopper(story, "u1")
    story.advance_to(due - dt.timedelta(hours=1))
    add_to_cart(story, "u1", "L1")
    story.advance_to(due)
    [push] = messages(engine, "u1")
    if goes == due:
        assert (push["status"], push.get("reason"), push["sentAt"]) == ("sent", None, utc(due))
        return
    assert (push["status"], push["reason"], push["scheduledAt"]) == ("scheduled", "quiet_hours", utc(goes))
    story.advance_to(goes - dt.timedelta(minutes=1))
    assert messages(engine, "u1")[0]["status"] == "scheduled"
    story.advance_to(goes)
    [push] = messages(engine, "u1")
    assert (push["status"], push["reason"], push["sentAt"]) == ("sent", "quiet_hours", utc(goes))


def test_quiet_hours_are_the_users_own_local_night(story: Story, engine: Engine) -> None:
    """22:30 in New York is 10:30 in Bangkok: the New York user's push waits for 08:00 New York time."""
    shopper(story, "ny", timezone="America/New_York")
    due = dt.datetime(2026, 1, 6, 22, 30, tzinfo=NEW_YORK)
    story.advance_to(due - dt.timedelta(hours=1))
    add_to_cart(story, "ny", "L1")
    story.advance_to(due)
    [push] = messages(engine, "ny")
    morning = dt.datetime(2026, 1, 7, 8, 0, tzinfo=NEW_YORK)
    assert (push["status"], push["reason"], push["scheduledAt"]) == ("scheduled", "quiet_hours", utc(morning))


# The daily push cap: one marketing push per user per local calendar day ------------------------------------------

def test_the_daily_push_cap_counts_the_users_own_calendar_day(story: Story, engine: Engine) -> None:
    """Two New York users, two price-drop pushes each. For ``same_day`` both fall on Tue 6 Jan in New York but on
    two Bangkok days; for ``two_days`` they fall on two New York days but on one Bangkok day (Tue 6 Jan)."""
    for user in ("same_day", "two_days"):
        shopper(story, user, timezone="America/New_York")
    drops = [
        (dt.datetime(2026, 1, 5, 21, 0, tzinfo=NEW_YORK), "two_days", "T1"),  # Tue 6 Jan 09:00 in Bangkok
        (dt.datetime(2026, 1, 6, 8, 30, tzinfo=NEW_YORK), "two_days", "T2"),  # Tue 6 Jan 20:30 in Bangkok
        (dt.datetime(2026, 1, 6, 9, 0, tzinfo=NEW_YORK), "same_day", "S1"),   # Tue 6 Jan 21:00 in Bangkok
        (dt.datetime(2026, 1, 6, 20, 0, tzinfo=NEW_YORK), "same_day", "S2"),  # Wed 7 Jan 08:00 in Bangkok
    ]
    for _, user, listing in drops:
        favorite(story, user, listing)
    for at, _, listing in drops:
        story.advance_to(at)
        drop_price(story, listing, 10000, 8000)
    assert statuses(engine, "same_day", channel="push") == [("sent", None), ("suppressed", "frequency_cap")]
    assert statuses(engine, "two_days", channel="push") == [("sent", None), ("sent", None)]


TRANSACTIONAL = """
flows:
  order_shipped:
    name: "📦 Order shipped"
    trigger: {event: order_shipped, per: listing_id}
    steps:
      - name: shipped_push
        send: {channel: push, kind: transactional, template: cart_nudge_push}
"""


@pytest.fixture
def transactional_story(tmp_path: Path, clock: ManualClock) -> Story:
    config = tmp_path / "growth.yaml"
    config.write_text(TRANSACTIONAL, encoding="utf-8")
    engine = build_engine(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", data_dir=tmp_path / "data",
                                   config_file=config), clock=clock)
    yield Story(engine, clock)  # type: ignore[misc]
    engine.close()


def ship(story: Story, user: str, listing: str) -> None:
    story.track(user, "order_shipped", listing_id=listing, product=f"เลนส์ {listing}")


def test_transactional_pushes_are_neither_held_nor_capped_nor_counted(transactional_story: Story) -> None:
    story = transactional_story
    engine = story.engine
    # No push opt-in, 23:00 local, three in a row: every transactional push goes at once.
    shopper(story, "night_owl", consent={"email": True})
    story.advance_to(dt.datetime(2026, 1, 5, 23, 0, tzinfo=BKK))
    for n in range(3):
        ship(story, "night_owl", f"N{n}")
    assert statuses(engine, "night_owl") == [("sent", None)] * 3
    assert {m["sentAt"] for m in messages(engine, "night_owl")} == {utc(story.now)}
    # Two transactional pushes in the morning take nothing from the day's one marketing push.
    shopper(story, "buyer")
    story.advance_to(dt.datetime(2026, 1, 6, 9, 0, tzinfo=BKK))
    ship(story, "buyer", "B1")
    ship(story, "buyer", "B2")
    favorite(story, "buyer", "F1")
    favorite(story, "buyer", "F2")
    story.advance(hours=1)
    drop_price(story, "F1", 10000, 8000)
    story.advance(hours=1)
    drop_price(story, "F2", 10000, 8000)  # the cap is live: the second marketing push of the day is held back
    got = [(m["flow"], m["status"], m.get("reason")) for m in messages(engine, "buyer")]
    assert got == [("order_shipped", "sent", None), ("order_shipped", "sent", None), ("price_drop", "sent", None),
                   ("price_drop", "suppressed", "frequency_cap")]


# The email cap: at most 3 marketing emails per user per rolling 7 days -------------------------------------------

def test_the_fourth_email_waits_for_the_first_to_be_seven_days_old(story: Story, engine: Engine) -> None:
    """Coupon emails go 24 h after each abandoned cart: three on three days from Tue 6 Jan 10:00, then one
    6 days 23 hours after the first (held back) and one exactly 7 days after it (goes)."""
    shopper(story, "u1")
    first = dt.datetime(2026, 1, 6, 10, 0, tzinfo=BKK)
    due = [first, first + dt.timedelta(days=1), first + dt.timedelta(days=2),
           first + dt.timedelta(days=6, hours=23), first + dt.timedelta(days=7)]
    for n, at in enumerate(due):
        story.advance_to(at - dt.timedelta(days=1))
        add_to_cart(story, "u1", f"L{n}")
    story.advance_to(due[-1])
    emails = messages(engine, "u1", channel="email")
    assert [(m["scheduledAt"], m["status"], m.get("reason")) for m in emails] == [
        (utc(due[0]), "sent", None), (utc(due[1]), "sent", None), (utc(due[2]), "sent", None),
        (utc(due[3]), "suppressed", "frequency_cap"),
        (utc(due[4]), "sent", None),
    ]
    assert {m["step"] for m in emails} == {"coupon_email"}


# Flow B: a drop over 10 % -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "alert"), [
    (10000, 9000, False),     # exactly 10 %
    (10000, 8999, True),      # 10.01 %
    (30000, 27000, False),    # exactly 10 %
    (30000, 26997, True),     # 10.01 %
], ids=["10000-10%", "10000-10.01%", "30000-10%", "30000-10.01%"])
def test_a_price_drop_alerts_only_over_ten_percent(story: Story, engine: Engine, old: float, new: float,
                                                   alert: bool) -> None:
    shopper(story, "fan")
    favorite(story, "fan", "L1", price=old)
    drop_price(story, "L1", old, new)
    assert [m["flow"] for m in messages(engine, "fan")] == (["price_drop"] if alert else [])


# Consent: a channel absent from ``consent`` is not consented -----------------------------------------------------

@pytest.mark.parametrize("consent", [{"email": True, "in_app": True}, {}, None],
                         ids=["push-not-mentioned", "empty-consent", "no-consent-trait"])
def test_a_channel_absent_from_consent_gets_no_marketing(story: Story, engine: Engine,
                                                          consent: dict[str, bool] | None) -> None:
    traits: dict[str, object] = {"push_token": "tok", "email": "u1@example.test"}
    if consent is not None:
        traits["consent"] = consent
    story.identify("u1", **traits)
    add_to_cart(story, "u1", "L1")
    story.advance(hours=1)
    [push] = messages(engine, "u1")
    assert (push["channel"], push["status"], push["reason"]) == ("push", "suppressed", "consent")
    story.identify("u1", consent={**(consent or {}), "push": True})  # opting in is what lets the next one go
    add_to_cart(story, "u1", "L2")
    story.advance(hours=1)
    assert statuses(engine, "u1", channel="push") == [("suppressed", "consent"), ("sent", None)]

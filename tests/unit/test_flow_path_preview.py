"""A flow's path for one user ("what would happen", issue 15) on the shipped default flows and the manual clock
(Mon 5 Jan 2026 09:00 ICT): the entry with its reason, waits to their local time, and each send with what the one
send decision would decide at its time. Where the engine really runs the flow, the preview must say what it did."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from growthengine.clock import ManualClock, to_us
from growthengine.engine import Engine
from growthengine.flows.one_off import OneOffRefused
from growthengine.flows.path_preview import preview_path
from growthengine.gate.bucketing import in_holdout
from growthengine.storage.flow_schema import flow_runs
from growthengine.storage.flow_schema import messages as messages_table
from growthengine.storage.schema import coupons, engine_state, timers
from tests.scenarios.story import Story, messages

BKK = dt.timezone(dt.timedelta(hours=7))
CONSENT_ALL = {"push": True, "email": True, "sms": True, "in_app": True, "ads": True}


@pytest.fixture
def story(engine: Engine, clock: ManualClock) -> Story:
    return Story(engine, clock)


def shopper(story: Story, user: str, **traits: Any) -> None:
    fields: dict[str, Any] = {"email": f"{user}@example.test", "push_token": f"tok-{user}", "language": "th",
                              "consent": CONSENT_ALL}
    fields.update(traits)
    story.identify(user, **fields)


def add_camera(story: Story, user: str) -> None:
    story.track(user, "add_to_cart", listing_id="L1", title="กล้องฟิล์ม Olympus OM-1", price=4500,
                image_url="https://img.jaikod.test/L1.jpg", stock=2)


def path(engine: Engine, flow: str, user: str, **values: Any) -> dict[str, Any]:
    return preview_path(engine.store, engine.flows, engine.flows.flows[flow], user, to_us(engine.clock.now()),
                        values or None).as_json()


def step(found: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in found["steps"] if s["name"] == name)


def stored(engine: Engine) -> list[int]:
    """Rows of what a run, a send or a coupon would leave behind."""
    with engine.store.read() as tx:
        return [int(tx.conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for table in (messages_table, flow_runs, timers, coupons, engine_state)]


def test_cart_path_for_a_member_renders_every_step_and_saves_nothing(story: Story, engine: Engine) -> None:
    shopper(story, "u1")
    add_camera(story, "u1")
    story.advance(hours=1)  # in cart_abandoners: the real run sends the nudge now
    [real_push] = messages(engine, "u1")
    before = stored(engine)
    found = path(engine, "cart_abandonment", "u1")
    assert found["enters"] is False and "already in this flow for L1" in found["reason"], found["reason"]
    assert found["trigger"]["segment"] == "cart_abandoners" and found["entity"] == "L1"
    assert [s["type"] for s in found["steps"]] == ["send", "wait", "coupon", "send", "wait", "send"]
    push = step(found, "nudge_push")
    # Today's push already went (the real run's): the cap of one push a local day holds the preview's.
    assert push["decision"]["action"] == "suppress" and push["decision"]["reason"] == "frequency_cap", push
    assert {"rule": "frequency_cap", "passes": False,
            "detail": "at most 1 marketing push per local calendar day: 1 already"} in push["checks"]
    assert push["message"]["body"] == real_push["body"], "the same copy the runner really made"
    wait = found["steps"][1]
    assert wait["type"] == "wait" and wait["until"] == "2026-01-06T02:00:00Z"  # T+24h, T = the add_to_cart
    assert wait["untilLocal"] == {"th": "6 ม.ค. 2569 09:00", "en": "6 Jan 2026, 09:00"}
    coupon = step(found, "coupon")
    assert coupon["coupon"]["code"] == "PREVIEW" and coupon["coupon"]["expiresAt"] == "2026-01-07T04:00:00Z"
    email = step(found, "coupon_email")
    assert email["decision"]["action"] == "send" and email["goesAt"] == "2026-01-06T02:00:00Z", email
    assert "PREVIEW" in email["message"]["body"] and email["message"]["subject"] == "ลดให้พิเศษ 5% เฉพาะคุณ 🏷️"
    modal = step(found, "last_chance_modal")
    assert modal["at"] == "2026-01-07T02:00:00Z" and modal["channel"] == "in_app" and modal["goes"] is True
    assert found["exits"] == [{"event": "purchase", "where": {"listing_ids": {"contains": "{{ entity }}"}},
                               "happened": False, "reason": "no purchase since the trigger: the run goes on until "
                               "one comes"}]
    assert stored(engine) == before, "a preview stores no message, run, timer, coupon or state"


def test_a_user_in_quiet_hours_gets_the_deferred_time_the_engine_gives(story: Story, engine: Engine,
                                                                         clock: ManualClock) -> None:
    story.advance_to(dt.datetime(2026, 1, 5, 21, 45, tzinfo=BKK))
    shopper(story, "night")
    add_camera(story, "night")
    story.advance(hours=1)  # 22:45 Bangkok: the nudge is held until 08:00
    [real] = messages(engine, "night")
    assert real["status"] == "scheduled" and real["reason"] == "quiet_hours"
    push = step(path(engine, "cart_abandonment", "night"), "nudge_push")
    assert push["decision"]["action"] == "defer" and push["decision"]["reason"] == "quiet_hours", push
    assert push["decision"]["at"] == real["scheduledAt"] == "2026-01-06T01:00:00Z"
    assert push["decision"]["local"] == {"th": "6 ม.ค. 2569 08:00", "en": "6 Jan 2026, 08:00"}
    assert push["whenDue"]["action"] == "send" and push["goesAt"] == "2026-01-06T01:00:00Z"
    assert {"rule": "quiet_hours", "passes": False,
            "detail": "quiet hours 22:00–08:00 Asia/Bangkok: ends 2026-01-06T01:00:00Z"} in push["checks"]


def test_without_push_consent_the_push_is_held_for_consent(story: Story, engine: Engine) -> None:
    shopper(story, "nopush", consent={"email": True, "in_app": True})
    add_camera(story, "nopush")
    story.advance(hours=1)
    found = path(engine, "cart_abandonment", "nopush")
    push = step(found, "nudge_push")
    assert push["decision"]["action"] == "suppress" and push["decision"]["reason"] == "consent", push
    assert push["goes"] is False and push["channel"] == "push"
    assert {"rule": "consent", "passes": False, "detail": "no opt-in to marketing on push"} in push["checks"]
    [real] = messages(engine, "nopush")
    assert real["reason"] == "consent"
    assert step(found, "coupon_email")["decision"]["action"] == "send", "email consent holds"


def test_a_holdout_user_is_held_and_another_is_not(story: Story, engine: Engine) -> None:
    held = next(f"w{i}" for i in range(500) if in_holdout("first_buy_nudge", f"w{i}", 10))
    kept = next(f"w{i}" for i in range(500) if not in_holdout("first_buy_nudge", f"w{i}", 10))
    for user in (held, kept):
        shopper(story, user, language="en")
    found = path(engine, "first_buy_nudge", held)
    assert found["enters"] is False and found["reason"] == "not in segment window_shoppers now"
    wait = found["steps"][0]
    assert wait["until"] == "2026-01-05T12:00:00Z" and wait["untilLocal"]["en"] == "5 Jan 2026, 19:00"
    push = step(found, "first_buy_push")
    assert push["at"] == "2026-01-05T12:00:00Z"
    assert push["decision"] == {"action": "suppress", "reason": "holdout",
                                "detail": "the user is in first_buy_nudge's holdout"}, push
    other = step(path(engine, "first_buy_nudge", kept), "first_buy_push")
    assert other["decision"]["action"] == "send" and other["goesLocal"]["en"] == "5 Jan 2026, 19:00", other
    assert other["message"]["language"] == "en" and other["message"]["title"] == "Found something you like? 👀"


def test_event_trigger_says_which_event_starts_it_and_finds_it_in_history(story: Story, engine: Engine) -> None:
    shopper(story, "seller")
    none = path(engine, "seller_coach", "seller")
    assert none["enters"] is False and none["reason"].startswith("starts on seller_registered: none that matches")
    story.track("seller", "seller_registered")
    story.advance(hours=2)
    found = path(engine, "seller_coach", "seller")
    assert found["enters"] is False and "already in this flow" in found["reason"]  # the real run waits 3 days
    assert found["trigger"]["found"] == "2026-01-05T02:00:00Z"
    assert found["startsAt"] == "2026-01-08T02:00:00Z", "A and no listing within 3 days: the steps start at A + 3d"
    assert [e["event"] for e in found["exits"]] == ["listing_created"]
    story.track("seller", "listing_created", listing_id="L9", title="Lens", price=900)
    ended = path(engine, "seller_coach", "seller")
    assert ended["exits"][0]["happened"] is True


def test_unknown_user_is_refused(engine: Engine) -> None:
    with pytest.raises(OneOffRefused) as refused:
        path(engine, "cart_abandonment", "ghost")
    assert refused.value.status == 404


def test_a_user_who_ignores_email_and_opens_push_gets_the_channel_switch(story: Story, engine: Engine) -> None:
    """SPEC 4.C: ten marketing emails ignored, five of six pushes opened: the win-back email goes by push."""
    from growthengine.engagement.tracker import SCORES
    from growthengine.optimize.channel_scores import ChannelScores

    shopper(story, "pushy", language="en")
    shopper(story, "plain", language="en")
    scores = ChannelScores()
    at = engine.clock.now() - dt.timedelta(days=3)
    scores.observe("email", at, sends=10, engagements=0)
    scores.observe("push", at, sends=6, engagements=5)
    with engine.store.transaction() as tx:
        tx.user_models.save_rows([("pushy", SCORES, scores.to_json())], to_us(engine.clock.now()))
    email = step(path(engine, "churn_reactivation", "pushy"), "winback_email")
    assert email["plannedChannel"] == "email" and email["channel"] == "push" and email["switched"] is True, email
    assert email["decision"]["action"] == "send" and email["route"]["to"] == "push"
    assert email["route"]["reason"] == "channel_score" and email["channelChoice"]["switched"] is True
    assert email["message"]["channel"] == "push" and email["message"]["subject"] is None
    kept = step(path(engine, "churn_reactivation", "plain"), "winback_email")
    assert kept["channel"] == "email" and kept["switched"] is False and kept["message"]["subject"]
    assert kept["channelChoice"]["detail"] == "no evidence about this user's channels yet: stays on email"


def test_the_preview_carries_no_working_unsubscribe_link(story: Story, engine: Engine) -> None:
    """A real send's copy may carry the signed one-click link; a preview's must not (a click would unsubscribe)."""
    engine.change_config("template", "bye_push", {
        "channel": "push", "th": {"title": "ลาก่อน", "body": "ยกเลิก: {{ unsubscribe_url }}"},
        "en": {"title": "Bye", "body": "Unsubscribe: {{ unsubscribe_url }}"}}, "test")
    engine.change_config("flow", "bye", {"name": "Bye", "trigger": {"event": "bye_due"}, "steps": [
        {"name": "bye_push", "send": {"channel": "push", "kind": "marketing", "template": "bye_push"}}]}, "test")
    shopper(story, "u2", language="en")
    story.track("u2", "bye_due")
    [real] = messages(engine, "u2", flow="bye")
    assert "/u/" in real["body"], real["body"]  # the engine's own send carries the signed link
    push = step(path(engine, "bye", "u2", source="test"), "bye_push")
    assert push["message"]["body"] == "Unsubscribe: https://jaikod.com/unsubscribe", push["message"]["body"]


def test_the_paths_own_sends_count_against_its_later_caps(story: Story, engine: Engine) -> None:
    """Three marketing emails a rolling week: one already sent today, then the path's first two leave no room for
    its third; a user with no email before gets all three."""
    from growthengine.flows.one_off import send_test

    email = {"channel": "email", "kind": "marketing", "template": "churn_winback_email"}
    engine.change_config("flow", "series", {"name": "Series", "trigger": {"event": "series_due"}, "steps": [
        {"name": "first", "send": email}, {"wait": {"for": "1d"}}, {"name": "second", "send": email},
        {"wait": {"for": "1d"}}, {"name": "third", "send": email}]}, "test")
    shopper(story, "busy")
    shopper(story, "calm")
    with engine.store.transaction() as tx:
        sent = send_test(tx, engine.flows.runner, "churn_winback_email", "busy", "email",
                         to_us(engine.clock.now()), None)
    engine.after_ingest()
    assert [m["id"] for m in messages(engine, "busy")] == [sent.id]
    busy = path(engine, "series", "busy", source="test")
    assert busy["enters"] is True and busy["reason"] == "series_due now (as given)"
    actions = {s["name"]: (s["decision"]["action"], s["decision"]["reason"]) for s in busy["steps"] if "decision" in s}
    assert actions == {"first": ("send", None), "second": ("send", None), "third": ("suppress", "frequency_cap")}
    third = step(busy, "third")
    assert third["at"] == "2026-01-07T02:00:00Z"
    assert {"rule": "frequency_cap", "passes": False, "detail": "at most 3 marketing email per 7 days: 3 already"} \
        in third["checks"]
    calm = path(engine, "series", "calm", source="test")
    assert [s["decision"]["action"] for s in calm["steps"] if "decision" in s] == ["send", "send", "send"]

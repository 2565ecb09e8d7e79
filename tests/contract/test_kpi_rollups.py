"""The incremental KPI rollups equal a from-scratch recomputation over the same messages and events, on SQLite and
on PostgreSQL: through the real flows (sends, holdouts, caps, feedback, conversions, unsubscribes, merges) and
through arbitrary status changes written straight to the ledger."""

from __future__ import annotations

import datetime as dt
import random

from growthengine.analytics.recompute import recompute, stored
from growthengine.analytics.rollups import KpiRollups
from growthengine.analytics.service import kpi_report
from growthengine.clock import ManualClock, to_us
from growthengine.dashboard import views
from growthengine.domain.messages import STATUSES, Message
from growthengine.engine import Engine
from tests.scenarios.story import Story

CONSENT = {"push": True, "email": True, "in_app": True}


def _check(engine: Engine) -> None:
    engine.process_pending()
    with engine.store.transaction() as tx:
        expected = recompute(tx.conn, tx.kpis.config())
        assert expected.daily, "the workload made no messages"
        assert sum(c["converted"] + c["control_converted"] for c in expected.daily.values()), "nothing converted"
        assert stored(tx.conn) == expected
        KpiRollups(tx.kpis.config()).rebuild(tx)
        assert stored(tx.conn) == expected
    # The report reads whole months from the monthly rollups and the edge days from the daily ones.
    for start, end in (("2025-11-15", "2026-03-10"), ("2026-01-01", "2026-01-31"), ("2026-01-05", "2026-01-06")):
        body = kpi_report(engine, start=start, end=end)
        days = [k for k in expected.daily if start <= k[0] <= end]
        for counter in ("decided", "sent", "opened", "converted", "control", "unsubscribed"):
            assert body["overall"][counter] == sum(expected.daily[k][counter] for k in days), (start, counter)
        reasons = views.overview(engine, flow=None, start=start, end=end)["reasons"]
        assert sum(r["n"] for r in reasons) == sum(n for k, n in expected.reasons.items() if start <= k[0] <= end)


def test_rollups_equal_a_recomputation_through_the_real_flows(any_engine: Engine, clock: ManualClock) -> None:
    rng = random.Random(11)
    story = Story(any_engine, clock)
    users = [f"u{i}" for i in range(30)]
    for n, user in enumerate(users):
        story.identify(user, email=f"{user}@example.test", push_token=f"tok-{user}", consent=CONSENT, language="th")
        story.track(user, "add_to_cart", listing_id=f"L{n}", title="กล้องฟิล์ม", price=900 + n, stock=2)
        if n % 3 == 0:
            for _ in range(21):  # window shoppers: the first-buy nudge has a 10 % holdout
                story.track(user, "item_viewed", listing_id=f"V{n}", category="cameras", price=500)
    story.track("u1", "add_to_cart", listing_id="L99", title="เลนส์", price=300, stock=1)  # a second push: capped
    for _hour in range(12):
        story.advance(hours=1)
        found = any_engine.messages(limit=10_000)
        for message in rng.sample(found, k=min(4, len(found))):
            name = rng.choice(["message_opened", "message_clicked"])
            story.track(message.user_id, name, message_id=message.id)
        buyer = rng.choice(users)
        story.track(buyer, "purchase", order_id=f"o{_hour}", amount=500, listing_ids=[f"L{users.index(buyer)}"])
        if rng.random() < 0.4:
            story.track(rng.choice(users), "unsubscribed", channel=rng.choice(["push", "email", "all"]))
    any_engine.ingest([{"type": "track", "anonymousId": "visitor", "event": "purchase",
                        "properties": {"order_id": "anon", "amount": 1}}])
    any_engine.ingest([{"type": "identify", "userId": "u5", "anonymousId": "visitor", "traits": {}}])
    story.advance(days=2)
    _check(any_engine)


def test_rollups_equal_a_recomputation_under_arbitrary_status_changes(any_engine: Engine, clock: ManualClock) -> None:
    rng = random.Random(7)
    start = clock.now()
    ids: list[str] = []
    for step in range(6):
        now = start + dt.timedelta(hours=7 * step)
        clock.set(now)
        with any_engine.store.transaction() as tx:
            fresh = []
            for _ in range(25):
                status = rng.choice(STATUSES)
                reason = rng.choice([None, "holdout", "consent", "quiet_hours"]) if status in (
                    "suppressed", "scheduled") else None
                at = to_us(now) - rng.randrange(0, 3600) * 1_000_000
                mid = f"m{len(ids) + len(fresh)}"
                fresh.append(Message(
                    id=mid, user_id=f"u{rng.randrange(12)}", flow=rng.choice(["a", "b"]), step=rng.choice(["s1", "s2"]),
                    channel=rng.choice(["push", "email", "in_app"]), kind="marketing", status=status, reason=reason,
                    scheduled_us=at, updated_us=at, body="x", variant=rng.choice([None, "v1", "v2"]),
                    sent_us=at if status in ("sent", "delivered", "opened", "clicked") else None,
                ))
            tx.messages.add(fresh)
            ids += [m.id for m in fresh]
            for mid in rng.sample(ids, k=15):
                status = rng.choice(STATUSES)
                values: dict[str, object] = {"status": status, "updated_us": to_us(now)}
                if status in ("sent", "delivered", "opened", "clicked"):
                    values["sent_us"] = to_us(now) - rng.randrange(0, 86_400) * 1_000_000
                if status == "suppressed":
                    values["reason"] = rng.choice(["holdout", "frequency_cap"])
                if status == "opened":
                    values["data"] = {"opened_us": to_us(now)}
                tx.messages.update(mid, **values)
        calls = [{"type": "track", "userId": f"u{rng.randrange(12)}", "event": rng.choice(["purchase", "unsubscribed"]),
                  "properties": {"channel": rng.choice(["push", "email", "all"]), "amount": rng.randrange(1, 5000)},
                  "timestamp": (now - dt.timedelta(hours=rng.randrange(0, 30))).isoformat()} for _ in range(6)]
        assert any_engine.ingest(calls).accepted == 6
    _check(any_engine)


def test_every_change_of_a_message_appends_an_event_in_its_transaction(any_engine: Engine, clock: ManualClock) -> None:
    """The ledger's writers append each message's new state to the insert-only ``message_events`` in the same
    transaction (a rolled-back change leaves no event), keyed by user first."""
    import sqlalchemy as sa

    from growthengine.storage.message_events import message_events

    at = to_us(clock.now())
    message = Message(id="m1", user_id="u1", flow="f", step="s", channel="push", kind="marketing",
                      status="scheduled", reason="quiet_hours", scheduled_us=at, updated_us=at, body="x")
    with any_engine.store.transaction() as tx:
        tx.messages.add([message])
        tx.messages.add([message])  # already there: not written, no event
        tx.messages.update("m1", status="sent", sent_us=at + 5, updated_us=at + 5)
    try:
        with any_engine.store.transaction() as tx:
            tx.messages.update("m1", status="failed", updated_us=at + 6)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    with any_engine.store.transaction() as tx:
        tx.messages.update("m1", status="opened", updated_us=at + 9, data={"opened_us": at + 8})
    with any_engine.store.read() as tx:
        rows = tx.conn.execute(sa.select(message_events).order_by(message_events.c.id)).mappings().all()
        indexes = {ix["name"]: ix["column_names"] for ix in sa.inspect(tx.conn).get_indexes("message_events")}
    assert [(r["status"], r["reason"], r["sent_us"], r["at_us"], r["opened_us"]) for r in rows] == [
        ("scheduled", "quiet_hours", None, at, None), ("sent", "quiet_hours", at + 5, at + 5, None),
        ("opened", "quiet_hours", at + 5, at + 9, at + 8)]
    assert {r["user_id"] for r in rows} == {"u1"} and indexes["ix_message_events_user"][0] == "user_id"
    any_engine.process_pending()
    body = kpi_report(any_engine, start="2026-01-05", end="2026-01-05")
    assert (body["overall"]["sent"], body["overall"]["delivered"], body["overall"]["opened"]) == (1, 1, 1)
    assert body["now"]["scheduled"] == 0

"""The incremental KPI rollups equal a from-scratch recomputation over the same messages and events, on SQLite and
on PostgreSQL: through the real flows (sends, holdouts, caps, feedback, conversions, unsubscribes, merges) and
through arbitrary status changes written straight to the ledger."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from growthengine.analytics.recompute import recompute, stored
from growthengine.analytics.rollups import KpiRollups
from growthengine.analytics.service import kpi_report
from growthengine.clock import ManualClock, to_us
from growthengine.dashboard import views
from growthengine.domain.messages import STATUSES, Message
from growthengine.engine import Engine
from growthengine.storage import migrations
from tests.conftest import make_engine
from tests.pg_cluster import PgCluster
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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema at all, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database(migrated=False)


def test_a_ledger_from_before_the_message_events_is_counted_after_the_upgrade(empty_db_url: str, tmp_path: Path,
                                                                               clock: ManualClock) -> None:
    """Revision 0012 gives every message already in the ledger one event (its state now); the engine's first start
    on the new rollup version rebuilds the rollups from them."""
    from alembic import command
    from alembic.config import Config

    from growthengine.storage.database import open_engine

    db_url = empty_db_url
    engine, _dialect = open_engine(db_url)
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    at = to_us(clock.now())
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0011")
        for i, (status, sent) in enumerate((("opened", at), ("sent", at), ("suppressed", None))):
            conn.exec_driver_sql(
                "INSERT INTO messages (id, run_id, user_id, flow_key, step, channel, kind, status, reason, priority, "
                "scheduled_us, sent_us, updated_us, body, data) VALUES "
                f"('old{i}', NULL, 'u{i}', 'f', 's', 'push', 'marketing', '{status}', "
                f"{'NULL' if sent else repr('holdout')}, 50, {at}, {sent or 'NULL'}, {at}, 'x', "
                f"'{{\"opened_us\": {at + 60_000_000}}}')")
    engine.dispose()
    eng = make_engine(db_url, clock, tmp_path)
    try:
        body = kpi_report(eng, start="2026-01-05", end="2026-01-05")
        assert (body["overall"]["sent"], body["overall"]["opened"], body["overall"]["control"]) == (2, 1, 1)
        with eng.store.read() as tx:
            assert stored(tx.conn) == recompute(tx.conn, tx.kpis.config())
    finally:
        eng.close()


def _message(mid: str, user: str, at: int) -> Message:
    return Message(id=mid, user_id=user, flow="f", step="s", channel="push", kind="marketing", status="sent",
                   scheduled_us=at, sent_us=at, updated_us=at, body="x")


def test_a_message_change_that_commits_late_is_not_skipped(any_engine: Engine, clock: ManualClock) -> None:
    """On PostgreSQL the rollups read message events below the oldest running transaction: an event of a
    transaction that began earlier and commits later is still counted (on SQLite writes are serial)."""
    from growthengine.storage.message_store import MessageStore

    at = to_us(clock.now())
    with any_engine.store.engine.connect() as slow:
        late = slow.begin()
        MessageStore(slow, any_engine.store.dialect).add([_message("late", "u1", at)])
        if any_engine.store.dialect == "sqlite":
            late.commit()  # one writer at a time: the other cannot begin while this one is open
        with any_engine.store.transaction() as tx:
            tx.messages.add([_message("early", "u2", at)])
        any_engine.process_pending()
        if any_engine.store.dialect == "postgresql":
            # Behind the horizon: nothing is read yet, so the cursor cannot pass the open transaction's row.
            assert kpi_report(any_engine, start="2026-01-05", end="2026-01-05")["overall"]["sent"] == 0
            late.commit()
    any_engine.process_pending()
    assert kpi_report(any_engine, start="2026-01-05", end="2026-01-05")["overall"]["sent"] == 2

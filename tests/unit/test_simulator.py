"""The synthetic marketplace: seeded, on the tracking plan, with the patterns the default segments look for."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from growthengine.bootstrap import build_engine
from growthengine.cli.app import app
from growthengine.clock import ManualClock, RealClock, to_us
from growthengine.domain.tracking_plan import TRACKING_PLAN
from growthengine.domain.traits import validate_traits
from growthengine.engine import Engine
from growthengine.settings import Settings
from growthengine.simulate.batch import SimulationError, generate_events, run_simulation
from growthengine.simulate.feedback import SimMessage, respond
from growthengine.simulate.marketplace import HOUR_US, Marketplace, to_call
from growthengine.simulate.population import MESSAGE_CHANNELS
from growthengine.timefmt import parse_instant
from tests.conftest import START as ENGINE_START

START = dt.datetime(2026, 1, 5, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
DAY = dt.timedelta(days=1)

_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "number": (int, float), "list": (list,), "boolean": (bool,)}


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    """Sixty days of a 400-user marketplace (no engine: the generator alone)."""
    return generate_events(400, 60, seed=3, start=START)


def _by_user(calls: list[dict[str, Any]]) -> dict[str, list[tuple[dt.datetime, str, dict[str, Any]]]]:
    users: dict[str, list[tuple[dt.datetime, str, dict[str, Any]]]] = defaultdict(list)
    for call in calls:
        name = call["event"] if call["type"] == "track" else call["type"]
        users[call["userId"]].append((parse_instant(call["timestamp"]), name, call.get("properties") or {}))
    return users


def _conforms(name: str, properties: dict[str, Any]) -> None:
    assert name in TRACKING_PLAN, name
    for prop, kind in TRACKING_PLAN[name].items():
        assert prop in properties, (name, prop)
        value = properties[prop]
        assert isinstance(value, _TYPES[kind]) and not (kind == "number" and isinstance(value, bool)), (name, prop)


def test_the_same_seed_gives_the_same_events() -> None:
    first = generate_events(150, 3, seed=11, start=START)
    assert first == generate_events(150, 3, seed=11, start=START)
    assert first != generate_events(150, 3, seed=12, start=START)
    assert len(first) > 1000


def test_events_follow_the_tracking_plan(history: list[dict[str, Any]]) -> None:
    names = Counter(c["event"] for c in history if c["type"] == "track")
    identifies = [c for c in history if c["type"] == "identify"]
    for call in history:
        assert call["messageId"] and call["timestamp"]
        if call["type"] == "track":
            _conforms(call["event"], call["properties"])
        else:
            assert call["type"] == "identify"
            assert validate_traits(call["traits"]) == call["traits"]
    assert len({c["messageId"] for c in history}) == len(history)
    expected = set(TRACKING_PLAN) - {"message_opened", "message_clicked", "unsubscribed"}  # answers to messages
    assert expected <= set(names), expected - set(names)
    first = identifies[0]["traits"]
    assert first["email"].endswith("@example.test") and first["phone"].startswith("+66")
    assert set(first["consent"]) == {"push", "email", "sms", "in_app", "ads"}
    languages = Counter(c["traits"].get("language") for c in identifies if "language" in c["traits"])
    assert languages["th"] > 5 * languages["en"] > 0
    # Identify comes first: every user's first call is an identify.
    firsts: dict[str, str] = {}
    for call in history:
        firsts.setdefault(call["userId"], call["type"])
    assert set(firsts.values()) == {"identify"}


def test_the_patterns_the_segments_look_for_are_there(history: list[dict[str, Any]]) -> None:
    users = _by_user(history)
    week_end = START + 7 * DAY
    end = START + 60 * DAY
    window_shoppers = cart_without_purchase = churned = local = 0
    for events in users.values():
        first_week = [e for e in events if e[0] < week_end]
        views = sum(1 for e in first_week if e[1] == "item_viewed")
        if views > 20 and not any(e[1] == "purchase" for e in first_week):
            window_shoppers += 1
        bought = {lid for e in events if e[1] == "purchase" for lid in e[2]["listing_ids"]}
        if any(e[1] == "add_to_cart" and e[2]["listing_id"] not in bought for e in events):
            cart_without_purchase += 1
        active = [e[0] for e in events if e[1] != "identify"]
        if active and end - max(active) > 30 * DAY and len({(t - START).days for t in active}) >= 10:
            churned += 1
        searches = Counter(e[2]["province"] for e in events if e[1] == "location_searched" and e[0] >= end - 30 * DAY)
        if searches and searches.most_common(1)[0][1] > 5:
            local += 1
    assert window_shoppers >= 10
    assert cart_without_purchase >= 10
    assert churned >= 3
    assert local >= 10

    registered = {u for u, events in users.items() if any(e[1] == "seller_registered" for e in events)}
    listers = {u for u, events in users.items() if any(e[1] == "listing_created" for e in events)}
    assert registered - listers, "some new sellers never list (the seller coach's audience)"
    assert registered & listers
    drops = [c["properties"] for c in history if c.get("event") == "listing_price_changed"]
    assert any(d["new_price"] < 0.9 * d["old_price"] for d in drops)
    sold = Counter(c["userId"] for c in history if c.get("event") == "item_sold")
    assert sold.most_common(1)[0][1] > 10, "power sellers sell more than ten items"


def test_users_answer_messages_by_their_latent_responsiveness() -> None:
    market = Marketplace(2000, 5, START)
    market.open()
    at = market.start_us + 10 * HOUR_US
    market.plan_hour(market.start_us)
    market.drain(at)
    sent = [SimMessage(id=f"m{i}", user_id=market.population.ids[i], channel="email", flow="test",
                       sent_at=START + dt.timedelta(hours=10)) for i in range(2000)]
    respond(market, sent, at)
    answers = [e for e in market.drain(at + 7 * 24 * HOUR_US) if e[3].startswith("message_")]
    opened = {e[2] for e in answers if e[3] == "message_opened"}
    assert all(e[0] >= at for e in answers)
    assert {e[4]["message_id"] for e in answers} <= {m.id for m in sent}
    pop = market.population
    k = MESSAGE_CHANNELS.index("email")
    keen = [u for i, u in enumerate(pop.ids) if pop.open_prob[i, k] > 0.4]
    cold = [u for i, u in enumerate(pop.ids) if pop.open_prob[i, k] < 0.05]
    assert len(keen) > 50 and len(cold) > 50
    rate = lambda group: sum(u in opened for u in group) / len(group)  # noqa: E731
    assert rate(keen) > 3 * rate(cold)
    expected = sum(pop.truth(i).open_prob["email"] for i in range(pop.n))
    assert 0.4 * expected < len(opened) < 1.1 * expected  # below peak-hour odds when sent off-peak
    calls = [to_call(e, prefix="t") for e in answers]
    for call in calls:
        _conforms(call["event"], call["properties"])


def test_ground_truth_is_exposed() -> None:
    market = Marketplace(50, 1, START)
    truth = market.population.truth(0)
    assert truth.user_id == "u000001"
    assert abs(sum(truth.active_hours) - 1.0) < 1e-9 and 0 <= truth.peak_hour_of_week < 168
    assert abs(sum(truth.category_affinity.values()) - 1.0) < 1e-9
    uplift = truth.expected_uplift("push")
    assert uplift == pytest.approx(truth.open_prob["push"] * truth.click_prob["push"] * truth.persuadability)


def test_a_short_run_through_the_engine(engine: Engine, clock: ManualClock) -> None:
    report = run_simulation(engine, 200, 3, seed=7)
    assert report.rejected == 0 and report.duplicates == 0
    assert report.accepted == sum(report.stats.events.values()) > 1000
    assert clock.now() == ENGINE_START + 3 * DAY
    assert report.end == clock.now()
    assert engine.user_view("u000001") is not None
    assert report.segment_sizes is not None and sum(report.segment_sizes.values()) > 0
    counts = report.message_counts or {}
    assert counts.get("sent", 0) > 0, counts
    # The users heard every message the engine sent them on a channel they read, each exactly once.
    heard = [m for m in engine.messages(limit=100_000)
             if m.channel in MESSAGE_CHANNELS and m.status in ("sent", "delivered", "opened", "clicked")]
    assert report.stats.messages_received == len(heard) > 0
    with engine.store.transaction() as tx:
        assert tx.events.existing_message_ids([f"sim7-{to_us(report.start)}-1"])


def test_the_simulator_drives_a_manual_clock_only(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(SimulationError):
        run_simulation(engine, 0, 1)
    real = build_engine(Settings(db_url=f"sqlite:///{tmp_path / 'real.db'}", data_dir=tmp_path), clock=RealClock())
    try:
        with pytest.raises(SimulationError, match="manual clock"):
            run_simulation(real, 10, 1)
    finally:
        real.close()


def test_growth_simulate_prints_a_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--users", "60", "--days", "1", "--db",
                                      f"sqlite:///{tmp_path / 'sim.db'}"])
    assert result.exit_code == 0, result.output
    assert "purchases" in result.output and "item_viewed" in result.output


def test_an_ephemeral_admin_key_opens_only_its_own_key_ring() -> None:
    """What ``growth serve --simulate`` gives its simulator when only the admin key's hash is kept (the real
    second run is in tests/e2e/test_simulate_live.py)."""
    from growthengine.api.auth import KeyRing

    keys = KeyRing(["0" * 64], [])
    key = keys.add_ephemeral_admin()
    assert keys.role_of(key) == "admin"
    assert KeyRing(["0" * 64], []).role_of(key) is None, "the key lives in this process only"

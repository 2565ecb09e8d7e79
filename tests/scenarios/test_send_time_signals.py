"""Send time learns from every engagement signal the engine sees, per channel, and from the population it serves:
purchases and app opens teach each channel's model; the population's pattern is refitted from the users' models."""

from __future__ import annotations

import datetime as dt

import pytest

from growthengine.clock import ManualClock
from growthengine.engagement.service import POPULATION_KEY
from growthengine.engagement.tracker import send_time_kind
from growthengine.engine import Engine
from growthengine.optimize.send_time_population import PopulationSendTime
from tests.scenarios.story import Story

BKK = dt.timezone(dt.timedelta(hours=7))


def local_hour(answer: dict[str, str] | None) -> int:
    assert answer is not None
    return dt.datetime.fromisoformat(answer["sendAt"]).astimezone(BKK).hour


def test_purchases_and_app_opens_teach_every_channel(engine: Engine, clock: ManualClock) -> None:
    story = Story(engine, clock)
    story.identify("buyer", push_token="t", email="b@example.test", consent={"push": True, "email": True})
    for day in range(1, 25):  # evening shopping, three weeks
        at = dt.datetime(2025, 12, 10, 20, 20, tzinfo=BKK) + dt.timedelta(days=day)
        story.track("buyer", "purchase", at=at, order_id=f"o{day}", amount=500, listing_ids=[f"L{day}"])
    push, email = engine.send_time("buyer", "push"), engine.send_time("buyer", "email")
    assert push is not None and email is not None
    assert (push["source"], email["source"]) == ("personal", "personal")
    assert local_hour(push) == 20 and local_hour(email) == 20
    with engine.store.transaction() as tx:
        kinds = {k: tx.user_models.get_many(["buyer"], send_time_kind(k)) for k in ("push", "email", "sms", "in_app")}
    assert all(kinds.values())  # one model per channel
    story.identify("early", push_token="t2", consent={"push": True})
    for day in range(1, 25):
        story.track("early", "app_opened", at=dt.datetime(2025, 12, 10, 9, 10, tzinfo=BKK) + dt.timedelta(days=day))
    assert local_hour(engine.send_time("early", "push")) == 9


def test_the_population_pattern_is_refitted_from_the_users_models(any_engine: Engine, clock: ManualClock) -> None:
    engine = any_engine  # on SQLite and PostgreSQL
    story = Story(engine, clock)
    calls = []
    for n in range(40):  # a marketplace whose users come at lunch
        calls.append({"type": "identify", "userId": f"l{n}", "traits": {"push_token": f"t{n}",
                                                                         "consent": {"push": True}}})
        for day in range(1, 6):
            at = dt.datetime(2025, 12, 20, 12, 5 + n % 40, tzinfo=BKK) + dt.timedelta(days=day)
            calls.append({"type": "track", "userId": f"l{n}", "event": "app_opened", "timestamp": at.isoformat(),
                          "messageId": f"lunch-{n}-{day}"})
    assert not engine.ingest(calls).rejected
    story.identify("newcomer", push_token="x", consent={"push": True})
    answer = engine.send_time("newcomer", "push")
    assert answer is not None and answer["source"] == "global"  # no history of their own: SPEC 4.A's fallback
    optimizer = engine.flows.runner.optimizer
    assert optimizer is not None
    with engine.store.transaction() as tx:
        doc = tx.state.get(POPULATION_KEY + "push")
        assert doc is not None and doc["users"] == 40 and doc["fitted_at"]
        population = PopulationSendTime.from_json(doc)
        assert int(population.day_share().argmax()) == 12  # the refitted prior is this marketplace's lunch peak
        # kept in memory between refits
        again = optimizer.send_time_population(tx, "push", clock.now() + dt.timedelta(hours=1))
        assert again is optimizer.send_time_population(tx, "push", clock.now() + dt.timedelta(hours=2))
    later = clock.now() + dt.timedelta(days=2)
    with engine.store.transaction() as tx:
        refitted = optimizer.send_time_population(tx, "push", later)  # a day old: refitted
        assert tx.state.get(POPULATION_KEY + "push")["fitted_at"] == later.isoformat()
        assert refitted.users == 40


@pytest.mark.parametrize("channel", ["push", "email"])
def test_no_history_anywhere_uses_the_built_in_evening_pattern(engine: Engine, clock: ManualClock,
                                                               channel: str) -> None:
    Story(engine, clock).identify("solo", push_token="t", consent={"push": True, "email": True})
    answer = engine.send_time("solo", channel)
    assert answer is not None and answer["source"] == "global" and 18 <= local_hour(answer) < 21

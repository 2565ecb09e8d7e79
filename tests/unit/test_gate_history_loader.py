"""What a batch's send decision reads before it decides (gate/history_loader.py), on a throw-away SQLite database:
the channel scores of the users a message could be switched for, the send-time models of the users whose message
asks for a best time (on its planned channel), the population priors, and nothing the policy does not ask for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from growthengine.clock import to_us
from growthengine.domain.messages import Message
from growthengine.engagement.service import Optimizer
from growthengine.engagement.tracker import SCORES, send_time_kind
from growthengine.gate.decision import SendGate
from growthengine.gate.history import Candidate, Policy
from growthengine.gate.history_loader import load_history
from growthengine.gate.outcome import SEND
from growthengine.gate.rules import GateRules
from growthengine.optimize.channel_scores import ChannelScores
from growthengine.optimize.send_time import SendTimeModel
from growthengine.optimize.send_time_population import PopulationSendTime
from growthengine.storage.unit_of_work import Store

BKK = dt.timezone(dt.timedelta(hours=7))
NOON = dt.datetime(2026, 1, 6, 12, 0, tzinfo=BKK)
HOURS_12 = 12 * 3_600_000_000
TRAITS = {"push_token": "tok", "email": "u@example.test", "consent": {"push": True, "email": True}}


def msg(user: str, channel: str = "email", kind: str = "marketing") -> Message:
    return Message(id=f"m-{user}-{channel}", user_id=user, flow="f", step="s", channel=channel, kind=kind,
                   status="scheduled", scheduled_us=to_us(NOON), updated_us=to_us(NOON), body="x")


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = Store.open(sqlite_url)
    scores = ChannelScores()
    for day in range(1, 6):
        at = NOON - dt.timedelta(days=day)
        scores.observe("push", at, sends=4, engagements=3)
        scores.observe("email", at, sends=4, engagements=0)
    timed = SendTimeModel.fit([(NOON - dt.timedelta(days=d, hours=3), 1.0) for d in range(1, 6)], now=NOON,
                              tz="Asia/Bangkok")
    with opened.transaction() as tx:
        tx.user_models.save_many(SCORES, {u: scores.to_json() for u in ("u1", "u2", "u3")}, to_us(NOON))
        tx.user_models.save_many(send_time_kind("email"), {u: timed.to_json() for u in ("u1", "u2")}, to_us(NOON))
        tx.user_models.save_many(send_time_kind("push"), {"u3": timed.to_json()}, to_us(NOON))
    yield opened
    opened.close()


def policy(*, route: bool = True, send_time: bool = True) -> Policy:
    return Policy(rules=GateRules(caps=()), route=route, send_time=send_time)


def test_channel_scores_are_read_for_the_users_whose_message_could_be_switched(store: Store) -> None:
    candidates = [Candidate(msg("u1"), TRAITS),                                  # email marketing: routable
                  Candidate(msg("u2", kind="transactional"), TRAITS),           # never switched
                  Candidate(msg("u3"), TRAITS, release=True),                   # a held message coming due
                  Candidate(msg("u9"), TRAITS)]                                 # routable, but no scores kept
    with store.transaction() as tx:
        history = load_history(tx, candidates, policy(), to_us(NOON), models=Optimizer())
    assert set(history.channel_scores) == {"u1"}
    scores = history.channel_scores["u1"]
    assert scores["push"] > scores["email"], scores
    with store.transaction() as tx:
        assert load_history(tx, candidates, policy(route=False), to_us(NOON), models=Optimizer()).channel_scores == {}
        assert load_history(tx, candidates, policy(), to_us(NOON)).channel_scores == {}


def test_send_time_models_are_read_for_best_time_candidates_on_their_planned_channel(store: Store) -> None:
    candidates = [Candidate(msg("u1"), TRAITS, best_within_us=HOURS_12),
                  Candidate(msg("u2"), TRAITS),                                 # no best time asked
                  Candidate(msg("u3"), TRAITS, best_within_us=HOURS_12),        # u3's model is on push only
                  Candidate(msg("u3", "push"), TRAITS, best_within_us=HOURS_12, release=True)]
    with store.transaction() as tx:
        history = load_history(tx, candidates, policy(), to_us(NOON), models=Optimizer())
    assert set(history.send_time_models) == {("u1", "email")}
    assert history.send_time_models[("u1", "email")].events == 5
    assert set(history.send_time_population) == {"email"}
    assert isinstance(history.send_time_population["email"], PopulationSendTime)
    with store.transaction() as tx:
        off = load_history(tx, candidates, policy(send_time=False), to_us(NOON), models=Optimizer())
        assert (off.send_time_models, off.send_time_population) == ({}, {})
        assert load_history(tx, candidates, policy(), to_us(NOON)).send_time_models == {}


def test_an_empty_model_document_is_no_model(store: Store) -> None:
    with store.transaction() as tx:
        tx.user_models.save_many(send_time_kind("email"), {"u5": {}}, to_us(NOON))
        history = load_history(tx, [Candidate(msg("u5"), TRAITS, best_within_us=HOURS_12)], policy(), to_us(NOON),
                               models=Optimizer())
    assert history.send_time_models == {} and set(history.send_time_population) == {"email"}
    assert history.now_us == to_us(NOON)


def test_the_gate_decides_on_what_it_read_with_the_optimizers_models(store: Store) -> None:
    """u1 engages by push, not by email: with the optimizer's models its email moves to push (and waits for its
    best time when one is asked); without them the message keeps its channel and goes now."""
    gate = SendGate(GateRules(caps=()))
    plain = Candidate(msg("u1"), TRAITS)
    timed = Candidate(msg("u2"), TRAITS, best_within_us=HOURS_12)
    with store.transaction() as tx:
        switched, booked = gate.decide_candidates(tx, [plain, timed], to_us(NOON), gate.policy(optimize=True),
                                                  models=Optimizer())
        unrouted, unbooked = gate.decide_candidates(tx, [plain, timed], to_us(NOON), gate.policy(optimize=True))
        kept, now = gate.decide_candidates(tx, [plain, timed], to_us(NOON), gate.policy(), models=Optimizer())
    assert (kept, now) == (SEND, SEND), "the gate's own policy neither switches nor times a message"
    assert switched.action == "send" and switched.route is not None and switched.route.channel == "push"
    assert booked.send_time is not None and booked.send_time.reason == "personal_peak"
    assert (unrouted.action, unrouted.route) == ("send", None)
    assert unbooked.send_time is not None and unbooked.send_time.reason.startswith("global")


def test_a_real_providers_channel_fails_a_message_it_cannot_address(store: Store) -> None:
    gate = SendGate(GateRules(caps=()))
    ads = Candidate(msg("u1", "ads"), {"consent": {"ads": True}})
    with store.transaction() as tx:
        [failed] = gate.decide_candidates(tx, [ads], to_us(NOON), gate.policy(provider_channels=frozenset({"ads"})))
        [local] = gate.decide_candidates(tx, [ads], to_us(NOON), gate.policy())
    assert (failed.action, failed.reason) == ("fail", "no_address") and local == SEND

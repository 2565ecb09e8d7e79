"""Channel preference scores: Beta-binomial with decay, shrunk toward the population, and SPEC 4.C's routing rule."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from growthengine.optimize.channel_scores import (
    BetaPrior,
    ChannelPopulation,
    ChannelRule,
    ChannelScores,
    route,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
POP = ChannelPopulation({"push": BetaPrior.from_rate(0.05, 20), "email": BetaPrior.from_rate(0.20, 10)})


def history(scores: ChannelScores, channel: str, sends: int, opens: int, *, days: int = 30,
            end: dt.datetime = NOW) -> None:
    """``sends`` sends spread over ``days`` before ``end``, the first ``opens`` of them opened."""
    for i in range(sends):
        at = end - dt.timedelta(days=days * (sends - i) / sends)
        scores.observe(channel, at, sends=1, engagements=1 if i < opens else 0)


def test_no_evidence_scores_one_half_and_the_population_rate() -> None:
    scores = ChannelScores()
    assert scores.scores(POP, NOW) == {"push": 0.5, "email": 0.5, "sms": 0.5, "in_app": 0.5}
    assert scores.rate("email", POP, NOW) == pytest.approx(0.20)


def test_scores_move_toward_engagement() -> None:
    engaged, ignoring = ChannelScores(), ChannelScores()
    history(engaged, "push", 10, 8)
    history(ignoring, "email", 20, 0)
    assert engaged.score("push", POP, NOW) > 0.8
    assert ignoring.score("email", POP, NOW) < 0.1
    # the posterior mean sits between the population rate and the user's own rate
    assert 0.05 < engaged.rate("push", POP, NOW) < 0.8


def test_more_evidence_moves_a_score_further() -> None:
    few, many = ChannelScores(), ChannelScores()
    history(few, "push", 3, 1)
    history(many, "push", 30, 10)
    assert 0.5 < few.score("push", POP, NOW) < many.score("push", POP, NOW)


def test_old_evidence_decays_back_toward_the_population() -> None:
    scores = ChannelScores(half_life=dt.timedelta(days=30))
    history(scores, "email", 20, 0)
    assert scores.score("email", POP, NOW) < 0.1
    later = NOW + dt.timedelta(days=180)
    assert abs(scores.score("email", POP, later) - 0.5) < 0.1
    assert scores.evidence_at("email", later).trials == pytest.approx(
        scores.evidence_at("email", NOW).trials / 64, rel=1e-6)


def test_a_late_observation_weighs_as_old_as_it_is() -> None:
    scores = ChannelScores(half_life=dt.timedelta(days=10))
    scores.observe("push", NOW, sends=1)
    scores.observe("push", NOW - dt.timedelta(days=10), sends=1, engagements=1)
    ev = scores.evidence_at("push", NOW)
    assert (ev.trials, ev.successes) == pytest.approx((1.5, 0.5))


def test_rate_method_gives_the_posterior_mean() -> None:
    scores = ChannelScores(method="rate")
    scores.observe("email", NOW, sends=10, engagements=10)
    assert scores.score("email", POP, NOW) == pytest.approx((2 + 10) / (10 + 10))


def test_population_fit_recovers_the_spread_between_users() -> None:
    rng = np.random.default_rng(5)
    true_rates = rng.beta(2, 38, size=3000)  # mean 0.05, strength 40
    sends = rng.integers(5, 60, size=3000)
    opens = rng.binomial(sends, true_rates)
    population = ChannelPopulation.fit({"push": zip(opens.tolist(), sends.tolist(), strict=True)})
    prior = population.prior("push")
    assert prior.mean == pytest.approx(0.05, rel=0.08)
    assert 20 < prior.a + prior.b < 80
    assert population.prior("sms").mean == pytest.approx(0.02)  # unfitted channel: the default


def test_routes_promotional_email_to_push_per_spec_4c() -> None:
    scores = ChannelScores()
    history(scores, "email", 20, 0)
    history(scores, "push", 10, 8)
    values = scores.scores(POP, NOW)
    decision = route("email", "marketing", values)
    assert (decision.channel, decision.switched, decision.reason) == ("push", True, "channel_score")
    assert decision.inputs["scores"]["email"] < 0.1 < 0.8 < decision.inputs["scores"]["push"]
    assert "email score" in decision.detail


def test_transactional_is_never_switched() -> None:
    decision = route("email", "transactional", {"email": 0.01, "push": 0.99})
    assert (decision.channel, decision.switched, decision.reason) == ("email", False, "transactional")


@pytest.mark.parametrize(("email", "push", "expected"), [
    (0.09, 0.81, "push"), (0.11, 0.99, "email"), (0.01, 0.80, "email"), (0.5, 0.5, "email"),
])
def test_thresholds_are_strict(email: float, push: float, expected: str) -> None:
    assert route("email", "marketing", {"email": email, "push": push}).channel == expected


def test_no_switch_to_a_channel_the_user_cannot_receive_or_without_scores() -> None:
    kept = route("email", "marketing", {"email": 0.01, "push": 0.99}, available={"email"})
    assert (kept.channel, kept.switched, kept.reason) == ("email", False, "kept")
    assert "cannot receive" in kept.detail
    assert route("email", "marketing", {"email": 0.01}).channel == "email"
    assert route("push", "marketing", {"email": 0.01, "push": 0.99}).reason == "no_rule"


def test_rules_are_configurable_from_specs_words() -> None:
    rule = ChannelRule.parse({"if_email_below": 0.2, "if_push_above": 0.7, "action": "switch_to_push"})
    assert rule == ChannelRule("email", 0.2, "push", 0.7)
    sms_rule = ChannelRule.parse({"if_sms_below": 0.1, "if_in_app_above": 0.6, "action": "switch_to_in_app"})
    assert route("sms", "marketing", {"sms": 0.05, "in_app": 0.65}, [sms_rule]).channel == "in_app"
    with pytest.raises(ValueError):
        ChannelRule.parse({"if_email_below": 0.1, "if_push_above": 0.8, "action": "drop"})


def test_json_round_trip() -> None:
    scores = ChannelScores()
    history(scores, "push", 12, 5)
    history(scores, "email", 7, 1)
    back = ChannelScores.from_json(json.loads(json.dumps(scores.to_json())))
    assert back.scores(POP, NOW) == scores.scores(POP, NOW)
    population = ChannelPopulation.from_json(json.loads(json.dumps(POP.to_json())))
    assert population.prior("push").mean == pytest.approx(0.05)
    with pytest.raises(ValueError):
        scores.observe("push", dt.datetime(2026, 3, 1), sends=1)

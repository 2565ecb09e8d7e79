"""Channel preference scores: the user's last messages per channel, a Beta-binomial shrunk toward the population,
SPEC 4.C's calibration (10 ignored emails and 5 of 6 pushes opened switch the next promotional email to push) and
its routing rule."""

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
    ScoreConfig,
    counterpart_key,
    route,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DEFAULT = ChannelPopulation()  # the priors the engine starts with


def messages(scores: ChannelScores, channel: str, sends: int, opened: int, *, days: float = 25,
             end: dt.datetime = NOW, first_opened: bool = False, prefix: str = "") -> None:
    """``sends`` messages over ``days`` up to ``end``; the last ``opened`` (or the first, if asked) opened."""
    for i in range(sends):
        at = end - dt.timedelta(days=days * (sends - i) / sends)
        mid = f"msg_{prefix}{channel}{i:010d}"
        scores.record_send(channel, at, mid)
        if (i < opened) if first_opened else (i >= sends - opened):
            assert scores.record_engagement(channel, mid)


def test_no_evidence_scores_one_half_and_the_population_rate() -> None:
    scores = ChannelScores()
    assert scores.scores(DEFAULT, NOW) == {"push": 0.5, "email": 0.5, "sms": 0.5, "in_app": 0.5}
    assert scores.rate("email", DEFAULT, NOW) == pytest.approx(0.20)


def test_spec_4c_calibration_ten_ignored_emails_and_five_of_six_pushes() -> None:
    scores = ChannelScores()
    messages(scores, "email", 10, 0)
    messages(scores, "push", 6, 5, days=6)
    values = scores.scores(DEFAULT, NOW)
    assert values["email"] < 0.1 and values["push"] > 0.8, values
    decision = route("email", "marketing", values)
    assert (decision.channel, decision.switched, decision.reason) == ("push", True, "channel_score")
    # the cap allows 3 emails a week: ten of them spread over two months still count; nine are not yet enough
    slow = ChannelScores()
    messages(slow, "email", 10, 0, days=60)
    assert slow.score("email", DEFAULT, NOW) < 0.1
    nine = ChannelScores()
    messages(nine, "email", 9, 0)
    assert 0.1 < nine.score("email", DEFAULT, NOW) < 0.12


@pytest.mark.parametrize(("sends", "opened", "low", "high"), [
    (10, 1, 0.25, 0.45),  # one of the last ten opened: not an email ignorer
    (5, 0, 0.15, 0.25),  # five ignored: leaning low, not yet decisive
    (3, 0, 0.2, 0.4),
    (20, 0, 0.0, 0.03),
    (10, 10, 0.95, 1.0),
])
def test_email_scores_need_a_run_of_ignored_emails(sends: int, opened: int, low: float, high: float) -> None:
    scores = ChannelScores()
    messages(scores, "email", sends, opened)
    assert low <= scores.score("email", DEFAULT, NOW) <= high


def test_push_scores_need_engagement_above_the_typical_user() -> None:
    for sends, opened, expect_above in ((6, 5, True), (1, 1, True), (10, 0, False), (6, 0, False)):
        scores = ChannelScores()
        messages(scores, "push", sends, opened, days=6)
        assert (scores.score("push", DEFAULT, NOW) > 0.8) is expect_above, (sends, opened)


def test_only_the_last_messages_count() -> None:
    reader = ChannelScores()  # twenty emails opened, then ten ignored: still in the window, not an ignorer
    messages(reader, "email", 20, 20, end=NOW - dt.timedelta(days=12), days=10, prefix="a")
    messages(reader, "email", 10, 0, days=10, prefix="b")
    assert reader.score("email", DEFAULT, NOW) > 0.3
    messages(reader, "email", 10, 0, days=1, end=NOW + dt.timedelta(days=1), prefix="c")  # ten more: the window
    later = NOW + dt.timedelta(days=3)  # holds only the twenty ignored ones
    assert len(reader.history["email"]) == ScoreConfig().window
    assert reader.score("email", DEFAULT, later) < 0.1


def test_one_message_engaged_with_counts_once() -> None:
    scores = ChannelScores()
    scores.record_send("push", NOW - dt.timedelta(days=2), "msg_a")
    assert scores.record_engagement("push", "msg_a")
    assert not scores.record_engagement("push", "msg_a")  # opened, then clicked
    assert not scores.record_engagement("push", "msg_unknown")  # sent before the tracker saw it
    assert not scores.record_engagement("email", "msg_a")  # another channel's message
    ev = scores.evidence_at("push", NOW)
    assert (ev.successes, ev.trials) == (1.0, 1.0)


def test_an_unanswered_message_counts_once_it_had_a_day() -> None:
    scores = ChannelScores()
    scores.record_send("email", NOW - dt.timedelta(hours=2), "msg_new")
    assert scores.evidence_at("email", NOW).trials == 0
    assert scores.evidence_at("email", NOW + dt.timedelta(days=1)).trials == 1
    assert scores.record_engagement("email", "msg_new")
    assert scores.evidence_at("email", NOW).trials == 1  # answered: counts at once


def test_old_evidence_fades_so_a_switched_user_is_tried_again() -> None:
    scores = ChannelScores()
    messages(scores, "email", 12, 0)
    assert scores.score("email", DEFAULT, NOW) < 0.1
    config = ScoreConfig()
    assert scores.weight(config.grace) == 1.0
    assert scores.weight(config.grace + config.half_life) == pytest.approx(0.5)
    later = NOW + config.grace + 2 * config.half_life
    assert 0.15 < scores.score("email", DEFAULT, later) < 0.5


def test_observe_adds_grouped_evidence_and_late_messages_keep_their_order() -> None:
    scores = ChannelScores()
    scores.observe("push", NOW - dt.timedelta(days=1), sends=3, engagements=5)  # engagements capped by sends
    scores.record_send("push", NOW - dt.timedelta(days=3), "msg_late")
    assert [o.at_s for o in scores.history["push"]] == sorted(o.at_s for o in scores.history["push"])
    ev = scores.evidence_at("push", NOW)
    assert (ev.successes, ev.trials) == (3.0, 4.0)
    with pytest.raises(ValueError):
        scores.observe("push", dt.datetime(2026, 3, 1), sends=1)


def test_rate_method_gives_the_posterior_mean() -> None:
    scores = ChannelScores(method="rate")
    scores.observe("email", NOW - dt.timedelta(days=2), sends=10, engagements=10)
    prior = DEFAULT.prior("email")
    assert scores.score("email", DEFAULT, NOW) == pytest.approx((prior.a + 10) / (prior.a + prior.b + 10))


def test_population_fit_recovers_the_spread_between_users() -> None:
    rng = np.random.default_rng(5)
    true_rates = rng.beta(2, 38, size=3000)  # mean 0.05, strength 40
    sends = rng.integers(5, 60, size=3000)
    opens = rng.binomial(sends, true_rates)
    population = ChannelPopulation.fit({"push": zip(opens.tolist(), sends.tolist(), strict=True)})
    prior = population.prior("push")
    assert prior.mean == pytest.approx(0.05, rel=0.08)
    assert 20 < prior.a + prior.b < 80
    assert population.prior("sms").mean == pytest.approx(0.05)  # unfitted channel: the default


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


def test_json_round_trip_and_the_first_document_version() -> None:
    scores = ChannelScores()
    messages(scores, "push", 12, 5)
    messages(scores, "email", 7, 1)
    back = ChannelScores.from_json(json.loads(json.dumps(scores.to_json())))
    assert back.scores(DEFAULT, NOW) == scores.scores(DEFAULT, NOW)
    assert back.record_engagement("push", "msg_push0000000000")  # message ids survive (by their short key)
    v1 = {"v": 1, "as_of": (NOW - dt.timedelta(days=1)).isoformat(), "half_life_s": 2592000.0,
          "method": "relative", "e": {"email": [0.0, 12.0], "push": [4.0, 5.0]}}
    old = ChannelScores.from_json(v1)
    assert old.score("email", DEFAULT, NOW) < 0.1 and old.score("push", DEFAULT, NOW) > 0.8
    population = ChannelPopulation.from_json(json.loads(json.dumps(
        ChannelPopulation({"push": BetaPrior.from_rate(0.05, 20)}).to_json())))
    assert population.prior("push").mean == pytest.approx(0.05)


def test_counterpart_templates_are_named_after_the_email() -> None:
    assert counterpart_key("cart_coupon_email") == "cart_coupon_push"
    assert counterpart_key("seller_coach_email_2") == "seller_coach_push_2"
    assert counterpart_key("promo") == "promo_push"

"""Send-time optimization: personal peaks found, thin histories shrunk, the global peak without history, never a
quiet hour, recency, exploration and serialization, on simulated users whose true best hour is known."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import numpy as np
import pytest

from growthengine.optimize.send_time import SendTimeConfig, SendTimeModel, hour_of_week
from growthengine.optimize.send_time_population import PopulationSendTime
from growthengine.optimize.truth import make_send_time_truth

BKK = zoneinfo.ZoneInfo("Asia/Bangkok")
NOW = dt.datetime(2026, 3, 1, 20, 0, tzinfo=BKK)  # a Sunday evening
MONDAY = dt.datetime(2026, 3, 2, 0, 0, tzinfo=BKK)
DAY = dt.timedelta(hours=23, minutes=59)


def routine(hour: int, minute: int, n: int, *, seed: int = 1, days_back: int = 56, jitter_min: float = 20.0,
            end: dt.datetime = NOW) -> list[tuple[dt.datetime, float]]:
    """``n`` engagement events around hour:minute local on random recent days."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n):
        day = (end - dt.timedelta(days=int(rng.integers(1, days_back + 1)))).date()
        at = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=BKK) + dt.timedelta(
            minutes=float(rng.normal(0, jitter_min)))
        events.append((at, 1.0))
    return events


def local(choice_at: dt.datetime) -> dt.datetime:
    return choice_at.astimezone(BKK)


def test_no_history_falls_back_to_the_global_peak() -> None:
    model = SendTimeModel(tz="Asia/Bangkok")
    choice = model.best_time(MONDAY + dt.timedelta(hours=8), dt.timedelta(hours=24), "Asia/Bangkok")
    assert choice.source == "global"
    assert choice.reason == "global_peak"
    assert local(choice.send_at) == MONDAY.replace(hour=18)
    inside = model.best_time(MONDAY.replace(hour=19, minute=30), dt.timedelta(hours=24), "Asia/Bangkok")
    assert local(inside.send_at) == MONDAY.replace(hour=19, minute=30)


def test_no_history_and_no_peak_in_the_window_sends_at_the_earliest_allowed_time() -> None:
    choice = SendTimeModel().best_time(MONDAY.replace(hour=10), dt.timedelta(hours=2), "Asia/Bangkok")
    assert (choice.source, choice.reason) == ("global", "global_earliest")
    assert local(choice.send_at) == MONDAY.replace(hour=10)


@pytest.mark.parametrize(("hour", "minute", "expected_hour"), [(20, 30, 20), (8, 15, 8), (12, 40, 12)])
def test_finds_a_users_peak_with_enough_history(hour: int, minute: int, expected_hour: int) -> None:
    history = routine(hour, minute, 40, seed=hour) + routine(3, 0, 4, seed=99)  # a little noise too
    model = SendTimeModel.fit(history, now=NOW, tz="Asia/Bangkok")
    choice = model.best_time(MONDAY, DAY, "Asia/Bangkok")
    assert choice.source == "personal"
    assert choice.reason == "personal_peak"
    assert local(choice.send_at).hour == expected_hour
    assert choice.inputs["events"] == 44


def test_thin_history_is_shrunk_toward_the_population() -> None:
    population = PopulationSendTime()  # the built-in pattern: evening peak

    def distance(model: SendTimeModel) -> float:
        return float(0.5 * np.abs(model.profile(at=NOW, population=population) - population.share).sum())

    one = SendTimeModel.fit(routine(14, 10, 1, jitter_min=0), now=NOW)
    many = SendTimeModel.fit(routine(14, 10, 30, jitter_min=5), now=NOW)
    assert one.profile(at=NOW, population=population).sum() == pytest.approx(1.0)
    assert distance(one) < 0.25 < 0.6 < distance(many)
    assert one.best_time(MONDAY, DAY, population=population).inputs["personal_weight"] < 0.3
    assert many.best_time(MONDAY, DAY, population=population).inputs["personal_weight"] > 0.85
    assert local(many.best_time(MONDAY, DAY, population=population).send_at).hour == 14
    strong_prior = SendTimeModel.fit(routine(14, 10, 1, jitter_min=0), now=NOW,
                                     config=SendTimeConfig(prior_strength=30))
    assert 18 <= local(strong_prior.best_time(MONDAY, DAY, population=population).send_at).hour < 21


def test_a_learned_population_pattern_is_the_prior() -> None:
    lunch_people = [SendTimeModel.fit(routine(12, 30, 10, seed=s), now=NOW) for s in range(30)]
    population = PopulationSendTime.from_models(lunch_people)
    assert population.users == 30
    assert population.share.sum() == pytest.approx(1.0)
    assert population.peak() % 24 == 12
    newcomer = SendTimeModel.fit(routine(16, 0, 1, jitter_min=0), now=NOW)
    assert local(newcomer.best_time(MONDAY, DAY, population=population).send_at).hour == 12


def test_recent_routine_wins_over_an_old_one() -> None:
    old = routine(20, 30, 60, seed=1, end=NOW - dt.timedelta(days=240))
    new = routine(10, 20, 15, seed=2, days_back=14, jitter_min=10)
    model = SendTimeModel.fit(old + new, now=NOW)
    assert local(model.best_time(MONDAY, DAY).send_at).hour == 10
    no_decay = SendTimeModel.fit(old + new, now=NOW, config=SendTimeConfig(half_life=dt.timedelta(days=10_000)))
    assert local(no_decay.best_time(MONDAY, DAY).send_at).hour == 20


def test_update_equals_fit_on_all_events() -> None:
    first, second = routine(9, 0, 10, seed=1), routine(21, 0, 10, seed=2)
    first = routine(9, 0, 10, seed=1, end=NOW - dt.timedelta(days=3))
    model = SendTimeModel.fit(first, now=NOW - dt.timedelta(days=3))
    model.update(second, now=NOW)
    whole = SendTimeModel.fit(first + second, now=NOW)
    assert np.allclose(model.counts, whole.counts)
    assert model.events == whole.events == 20


def test_never_picks_a_quiet_hour() -> None:
    rng = np.random.default_rng(7)
    night_owl = SendTimeModel.fit(routine(23, 30, 50), now=NOW)  # the true peak is inside quiet hours
    early_bird = SendTimeModel.fit(routine(6, 0, 50), now=NOW)
    models = [night_owl, early_bird, SendTimeModel(), SendTimeModel.fit(routine(15, 0, 5), now=NOW)]
    for i in range(400):
        model = models[i % len(models)]
        after = MONDAY + dt.timedelta(minutes=int(rng.integers(0, 7 * 24 * 60)))
        within = dt.timedelta(minutes=int(rng.integers(0, 48 * 60)))
        choice = model.best_time(after, within, "Asia/Bangkok", (22, 8), explore_key=f"k{i}")
        hour = local(choice.send_at).hour
        assert 8 <= hour < 22, (i, choice)
        assert choice.send_at >= after
        if not choice.reason.endswith("_after_quiet"):
            assert choice.send_at <= after + within
    assert local(night_owl.best_time(MONDAY, DAY).send_at).hour == 21


def test_a_window_inside_quiet_hours_goes_to_their_end() -> None:
    model = SendTimeModel.fit(routine(20, 0, 30), now=NOW)
    choice = model.best_time(MONDAY.replace(hour=23), dt.timedelta(hours=3), "Asia/Bangkok")
    assert choice.reason == "personal_peak_after_quiet"
    assert local(choice.send_at) == (MONDAY + dt.timedelta(days=1)).replace(hour=8)


def test_quiet_hours_as_a_predicate_or_none() -> None:
    night_owl = SendTimeModel.fit(routine(23, 15, 50), now=NOW)
    assert local(night_owl.best_time(MONDAY, DAY, quiet=None).send_at).hour == 23  # email: no quiet hours
    choice = night_owl.best_time(MONDAY, DAY, quiet=lambda t: t.hour >= 21 or t.hour < 9)
    assert 9 <= local(choice.send_at).hour < 21
    half_past = night_owl.best_time(MONDAY.replace(hour=2), dt.timedelta(hours=8),
                                    quiet=(dt.time(22, 0), dt.time(8, 30)))
    assert local(half_past.send_at) == MONDAY.replace(hour=8, minute=30)


def test_quiet_hours_follow_the_users_zone() -> None:
    model = SendTimeModel.fit(routine(20, 0, 40), now=NOW, tz="Asia/Bangkok")
    choice = model.best_time(MONDAY, DAY, "Asia/Tokyo", (22, 8))  # Bangkok 20:00 is 22:00 in Tokyo
    tokyo = choice.send_at.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert 8 <= tokyo.hour < 22
    assert local(choice.send_at).hour == 19


def test_exploration_is_deterministic_small_and_shrinks_with_the_history() -> None:
    model = SendTimeModel.fit(routine(20, 30, 40), now=NOW)
    share = model.config.explore_probability(model.evidence(MONDAY))
    assert 0.01 < share < 0.03  # a long history explores little ...
    thin = SendTimeModel.fit(routine(20, 30, 3), now=NOW)
    assert thin.config.explore_probability(thin.evidence(MONDAY)) > 0.05  # ... a thin one more
    choices = {f"msg-{i}": model.best_time(MONDAY, DAY, explore_key=f"msg-{i}") for i in range(4000)}
    explored = {key: c for key, c in choices.items() if c.reason == "explore"}
    assert share * 0.6 <= len(explored) / len(choices) <= share * 1.4
    hours = [local(c.send_at).hour for c in explored.values()]
    assert 20 not in hours and len(set(hours)) > 2  # it tries other hours ...
    assert np.median(hours) >= 17  # ... mostly plausible ones, near the evening peak
    assert all(c.source == "personal" and 8 <= local(c.send_at).hour < 22 for c in explored.values())
    for key, choice in list(explored.items())[:5]:
        assert model.best_time(MONDAY, DAY, explore_key=key) == choice
    assert all(local(c.send_at).hour == 20 for key, c in choices.items() if key not in explored)
    assert model.best_time(MONDAY, DAY).reason == "personal_peak"  # no key, no exploration


def test_weekdays_and_weekends_are_learned_apart() -> None:
    weekdays = [(at, w) for at, w in routine(8, 25, 60, seed=4) if at.weekday() < 5]
    weekends = [(at, w) for at, w in routine(11, 25, 80, seed=5) if at.weekday() >= 5]
    model = SendTimeModel.fit(weekdays + weekends, now=NOW)
    saturday = MONDAY + dt.timedelta(days=5)
    assert local(model.best_time(MONDAY, DAY).send_at).hour == 8
    assert local(model.best_time(saturday, DAY).send_at).hour == 11
    profile = model.profile(at=NOW)
    assert profile.sum() == pytest.approx(1.0)
    assert all(profile[d * 24:(d + 1) * 24].sum() == pytest.approx(1 / 7) for d in range(7))


def test_json_round_trip_is_small_and_exact() -> None:
    model = SendTimeModel.fit(routine(20, 30, 80) + routine(8, 0, 20, seed=3), now=NOW)
    data = model.to_json()
    assert len(json.dumps(data)) < 1500
    back = SendTimeModel.from_json(json.loads(json.dumps(data)))
    assert back.events == model.events and back.tz == model.tz
    assert back.best_time(MONDAY, DAY, explore_key="x") == model.best_time(MONDAY, DAY, explore_key="x")
    population = PopulationSendTime.from_models([model])
    assert np.allclose(PopulationSendTime.from_json(population.to_json()).share, population.share, atol=1e-6)


def test_instants_must_carry_an_offset() -> None:
    with pytest.raises(ValueError):
        SendTimeModel().best_time(dt.datetime(2026, 3, 2, 9), DAY)
    with pytest.raises(ValueError):
        SendTimeModel().best_time(MONDAY, dt.timedelta(hours=-1))


def test_on_simulated_users_the_chosen_hour_is_near_the_true_best() -> None:
    now = dt.datetime(2026, 3, 1, 17, 0, tzinfo=dt.UTC)
    truth = make_send_time_truth(400, seed=3, now=now)
    models = [SendTimeModel.fit(h, now=now, tz=truth.tz) for h in truth.histories]
    population = PopulationSendTime.from_models(models)
    wednesday = dt.datetime(2026, 3, 4, 0, 0, tzinfo=BKK)
    near, ratio, blast_ratio = [], [], []
    for u, model in enumerate(models):
        if model.events < 30:
            continue
        chosen = hour_of_week(local(model.best_time(wednesday, DAY, population=population).send_at))
        best = truth.best_allowed_hour(u, 2, range(8, 22))
        near.append(abs(chosen - best) <= 1)
        ratio.append(truth.open_prob[u, chosen] / truth.open_prob[u, best])
        blast_ratio.append(truth.open_prob[u, 2 * 24 + 9] / truth.open_prob[u, best])
    assert len(near) >= 80
    assert np.mean(near) >= 0.75
    assert np.mean(ratio) >= 0.85
    assert np.mean(ratio) - np.mean(blast_ratio) >= 0.25


def test_the_bayes_policy_is_the_ceiling_the_model_is_measured_against() -> None:
    from growthengine.optimize.truth import bayes_profiles

    now = dt.datetime(2026, 3, 1, 17, 0, tzinfo=dt.UTC)
    truth = make_send_time_truth(300, seed=3, now=now)
    expected = bayes_profiles(truth, draws=6_000, seed=1)
    assert expected.shape == (300, 168) and np.all((expected >= 0) & (expected <= 1))
    allowed = [2 * 24 + h for h in range(8, 22)]
    rich = [u for u, h in enumerate(truth.histories) if len(h) >= 20]
    bayes = np.mean([truth.open_prob[u, allowed[int(np.argmax(expected[u, allowed]))]] for u in rich])
    oracle = np.mean([truth.open_prob[u, truth.best_allowed_hour(u, 2, range(8, 22))] for u in rich])
    blast = np.mean([truth.open_prob[u, 2 * 24 + 9] for u in rich])
    assert 0.85 < (bayes - blast) / (oracle - blast) <= 1.0

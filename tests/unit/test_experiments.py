"""Experiments: deterministic assignment, the always-valid test on simulated truth (A/A rarely declares a winner,
A/B finds the better variant), the unsubscribe guardrail, Thompson mode, and holdout uplift intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from growthengine.optimize.experiments import (
    Experiment,
    ExperimentConfig,
    allocation,
    assign,
    decide,
    eligible_variants,
    summary,
)
from growthengine.optimize.proportions import confidence_radius, msprt_p_value, uplift
from growthengine.optimize.truth import ArmTruth, draw_uplift, simulate_experiment


def experiment(**config: object) -> Experiment:
    return Experiment("exp-camera", ["curated", "price_hook"], config=ExperimentConfig(**config))  # type: ignore[arg-type]


def test_assignment_is_deterministic_and_explores_ten_percent() -> None:
    state = experiment()
    assignments = [assign(f"user-{i}", "exp-camera", state) for i in range(20_000)]
    explored = [a for a in assignments if a.reason == "explore"]
    assert 0.09 < len(explored) / len(assignments) < 0.11
    split = sum(a.variant == "price_hook" for a in explored) / len(explored)
    assert 0.45 < split < 0.55
    assert all(a.variant == "curated" for a in assignments if a.reason == "exploit")
    assert assign("user-7", "exp-camera", state) == assignments[7]
    other_key = [assign(f"user-{i}", "exp-other", state).reason for i in range(2_000)]
    assert other_key != [a.reason for a in assignments[:2_000]]  # a different experiment, a different draw


def test_after_a_verdict_everyone_gets_the_winner() -> None:
    state = experiment(min_sends=100)
    state.record("curated", sends=5_000, conversions=500)
    state.record("price_hook", sends=5_000, conversions=750)
    verdict = decide(state)
    assert (verdict.status, verdict.winner) == ("winner", "price_hook")
    assert verdict.p_value is not None and verdict.p_value < 0.05
    state.conclude(verdict)
    assert {assign(f"u{i}", "exp-camera", state).variant for i in range(500)} == {"price_hook"}
    assert assign("u1", "exp-camera", state).reason == "winner"
    state.record("curated", sends=100_000, conversions=20_000)  # later data does not undo a final verdict
    assert decide(state) == verdict


def test_no_verdict_before_the_minimum_sample() -> None:
    state = experiment(min_sends=300)
    state.record("curated", sends=299, conversions=10)
    state.record("price_hook", sends=299, conversions=150)
    assert decide(state).status == "running"


def test_a_b_test_on_simulated_truth_rolls_out_the_better_variant() -> None:
    rng = np.random.default_rng(11)
    winners = []
    for run in range(30):
        better_first = run % 2 == 0
        arms = [ArmTruth("A", 0.12 if better_first else 0.10), ArmTruth("B", 0.10 if better_first else 0.12)]
        result = simulate_experiment(arms, ExperimentConfig(), rng, audience=200_000, batch=2_000)
        winners.append((result.verdict.winner, "A" if better_first else "B"))
    assert sum(w == truth for w, truth in winners) >= 27
    assert not any(w is not None and w != truth for w, truth in winners)


@pytest.mark.parametrize("mode", ["explore", "thompson"])
def test_a_a_test_rarely_declares_a_winner(mode: str) -> None:
    rng = np.random.default_rng(2026)
    config = ExperimentConfig(mode=mode)  # type: ignore[arg-type]
    false_winners = 0
    runs = 80
    for _ in range(runs):
        rate = float(rng.uniform(0.05, 0.2))
        result = simulate_experiment([ArmTruth("A", rate), ArmTruth("B", rate)], config, rng, audience=100_000,
                                     batch=2_000)
        false_winners += result.verdict.status == "winner"
    assert false_winners <= 5  # <= 6 % (2 of 80 in each mode); peeking with a plain z-test: see below


def test_peeking_with_a_plain_z_test_would_fail_where_msprt_holds() -> None:
    """The reason for the always-valid test: checking a fixed-level z-test after every batch inflates A/A winners."""
    rng = np.random.default_rng(3)
    naive = valid = 0
    for _ in range(60):
        x = np.cumsum(rng.binomial(500, 0.1, size=(2, 60)), axis=1)
        n = 500 * np.arange(1, 61)
        pooled = (x[0] + x[1]) / (2 * n)
        z = (x[1] - x[0]) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
        naive += bool(np.any(np.abs(z) > 1.96))
        valid += any(msprt_p_value(int(x[0, t]), int(n[t]), int(x[1, t]), int(n[t]), 0.02) <= 0.05 for t in range(60))
    assert naive >= 10
    assert valid <= 3


def test_guardrail_excludes_a_variant_that_drives_unsubscribes() -> None:
    state = experiment()
    state.record("curated", sends=6_000, conversions=600, unsubscribes=12)
    state.record("price_hook", sends=6_000, conversions=720, unsubscribes=90)
    assert eligible_variants(state) == ["curated"]
    verdict = decide(state)
    assert (verdict.status, verdict.winner) == ("winner", "curated")
    assert "guardrail" in verdict.reason
    assert "price_hook" in verdict.inputs["guardrail_failed"]
    assert {assign(f"u{i}", "exp-camera", state).variant for i in range(2_000)} == {"curated"}


def test_a_better_converter_is_held_until_its_unsubscribes_are_shown_harmless() -> None:
    state = experiment()
    state.record("curated", sends=1_500, conversions=150, unsubscribes=4)
    state.record("price_hook", sends=1_500, conversions=260, unsubscribes=10)  # not yet significantly worse
    verdict = decide(state)
    assert verdict.status == "running"
    assert verdict.inputs["unsubscribe_excess_bound"] > 0.005
    assert "may still raise unsubscribes" in verdict.reason


def test_no_difference_once_variants_are_practically_equal_or_at_the_horizon() -> None:
    equal = experiment(min_effect=0.01)
    equal.record("curated", sends=400_000, conversions=40_000)
    equal.record("price_hook", sends=400_000, conversions=40_100)
    assert decide(equal).status == "no_difference"
    horizon = experiment(max_sends=2_000)
    horizon.record("curated", sends=2_000, conversions=200)
    horizon.record("price_hook", sends=2_000, conversions=210)
    verdict = decide(horizon)
    assert (verdict.status, verdict.winner) == ("no_difference", None)
    horizon.conclude(verdict)
    assert assign("u1", "exp-camera", horizon).variant == "curated"


def test_thompson_mode_sends_most_traffic_to_the_likely_better_variant() -> None:
    state = experiment(mode="thompson", min_sends=10_000)
    state.record("curated", sends=2_000, conversions=200)
    state.record("price_hook", sends=2_000, conversions=260)
    assignments = [assign(f"u{i}", "exp-camera", state) for i in range(3_000)]
    thompson = [a for a in assignments if a.reason == "thompson"]
    assert len(thompson) > 2_500
    assert sum(a.variant == "price_hook" for a in thompson) / len(thompson) > 0.9
    assert assign("u5", "exp-camera", state) == assignments[5]


def test_three_variants_use_a_bonferroni_level() -> None:
    state = Experiment("e3", ["a", "b", "c"], config=ExperimentConfig(min_sends=100))
    for name, conversions in (("a", 1_000), ("b", 1_000), ("c", 1_200)):
        state.record(name, sends=10_000, conversions=conversions)
    verdict = decide(state)
    assert verdict.inputs["level"] == pytest.approx(0.05 / 3)
    assert (verdict.status, verdict.winner) == ("winner", "c")


def test_msprt_p_value_and_radius() -> None:
    assert msprt_p_value(100, 1_000, 100, 1_000, 0.02) == 1.0
    assert msprt_p_value(0, 0, 5, 10, 0.02) == 1.0
    assert msprt_p_value(100, 1_000, 150, 1_000, 0.02) < msprt_p_value(100, 1_000, 130, 1_000, 0.02)
    assert msprt_p_value(100, 10_000, 300, 10_000, 0.02) < 1e-6
    assert confidence_radius(100, 1_000, 100, 1_000, 0.02, 0.05) > confidence_radius(1_000, 10_000, 1_000, 10_000,
                                                                                     0.02, 0.05)
    assert math.isinf(confidence_radius(0, 0, 1, 1, 0.02, 0.05))


def test_state_round_trips_through_json() -> None:
    state = experiment(mode="thompson")
    state.record("curated", sends=10, conversions=2, unsubscribes=1)
    state.conclude(decide(state))  # running: not kept
    assert state.verdict is None
    back = Experiment.from_json(json.loads(json.dumps(state.to_json())))
    assert back.config == state.config and back.variants == state.variants
    state.record("curated", sends=400_000, conversions=40_000)
    state.record("price_hook", sends=400_000, conversions=60_000)
    state.conclude(decide(state))
    back = Experiment.from_json(json.loads(json.dumps(state.to_json())))
    assert back.verdict is not None and back.verdict.winner == "price_hook"
    with pytest.raises(KeyError):
        state.record("nope", sends=1)


def test_uplift_matches_newcombes_published_intervals() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10
    for counts, (low, high) in (((56, 70, 48, 80), (0.0524, 0.3339)), ((9, 10, 3, 10), (0.1705, 0.8090)),
                                ((0, 10, 0, 20), (-0.1611, 0.2775))):
        result = uplift(*counts)
        assert (round(result.low, 4), round(result.high, 4)) == (low, high)
        assert result.method == "newcombe-wilson"


def test_uplift_intervals_cover_the_true_effect_about_95_percent() -> None:
    rng = np.random.default_rng(8)
    covered = 0
    runs = 1_500
    for _ in range(runs):
        control = float(rng.uniform(0.01, 0.3))
        draw = draw_uplift(rng, control_rate=control, uplift=float(rng.uniform(-0.5, 1.0)) * control,
                           treated_n=int(rng.integers(300, 10_000)), control_n=int(rng.integers(50, 2_000)))
        result = uplift(draw.treated_conversions, draw.treated_n, draw.control_conversions, draw.control_n)
        covered += result.low <= draw.true_uplift <= result.high
    assert 0.93 <= covered / runs <= 0.975


def test_uplift_rejects_empty_groups() -> None:
    with pytest.raises(ValueError):
        uplift(1, 0, 1, 10)
    with pytest.raises(ValueError):
        uplift(11, 10, 1, 10)


def test_allocation_before_and_after_the_verdict() -> None:
    state = Experiment("camera", ["default", "camera_lover", "price_sensitive"])
    before = allocation(state)
    assert before["phase"] == "testing" and before["explore_share"] == 0.1
    assert before["shares"] == pytest.approx({"default": 0.9 + 0.1 / 3, "camera_lover": 0.1 / 3,
                                              "price_sensitive": 0.1 / 3}, abs=1e-6)
    shares = {v: 0 for v in state.variants}
    for i in range(30_000):
        shares[assign(f"u{i}", "camera", state).variant] += 1
    assert shares["camera_lover"] / 30_000 == pytest.approx(0.1 / 3, abs=0.004)
    state.record("default", sends=3_000, conversions=150)
    state.record("camera_lover", sends=1_000, conversions=60)
    state.record("price_sensitive", sends=1_000, conversions=200)
    assert state.conclude(decide(state), "2026-01-06T10:00:00+07:00")
    after = allocation(state)
    assert after["phase"] == "rolled_out" and after["shares"] == {"default": 0.0, "camera_lover": 0.0,
                                                                  "price_sensitive": 1.0}
    thompson = allocation(Experiment("t", ["a", "b"], config=ExperimentConfig(mode="thompson")))
    assert thompson["shares"] is None and "Thompson" in thompson["rule"]


def test_summary_shows_variants_intervals_and_the_verdict_with_its_evidence() -> None:
    state = Experiment("camera", ["default", "price_sensitive"])
    state.record("default", sends=200, conversions=10)
    running = summary(state)
    assert running["state"] == "running" and running["verdict"]["final"] is False
    assert "collecting" in running["verdict"]["reason"] and running["interval"][0]["low"] is None
    state.record("default", sends=1_800, conversions=90)
    state.record("price_sensitive", sends=2_000, conversions=300)
    state.conclude(decide(state), "2026-01-06T10:00:00+07:00")
    state.record("default", sends=10)  # later sends do not change the recorded decision
    done = summary(state)
    assert done["state"] == "decided" and done["metric"] == "opens"
    assert done["verdict"]["winner"] == "price_sensitive" and done["verdict"]["decided_at"].startswith("2026-01-06")
    assert done["verdict"]["evidence"]["sends"] == {"default": 2_000, "price_sensitive": 2_000}
    [diff] = done["interval"]
    assert diff["variant"] == "price_sensitive" and diff["versus"] == "default"
    assert diff["difference"] == pytest.approx(0.1, abs=0.01)
    assert 0 < diff["low"] < diff["difference"] < diff["high"]
    [control, treated] = done["variants"]
    assert control["control"] and control["interval"][0] < 100 / 2_010 < control["interval"][1]
    assert treated["rate"] == 0.15 and treated["eligible"]
    back = Experiment.from_json(json.loads(json.dumps(state.to_json())))
    assert back.decided_at == state.decided_at and summary(back)["verdict"] == done["verdict"]

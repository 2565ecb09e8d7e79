"""What ``growth simulate`` measures of the AI layer: per flow uplift in conversion and GMV against the control
group, with intervals; the experiments' verdicts; the channel switches."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from growthengine.analytics.stats import mean_difference, newcombe_difference
from growthengine.cli.app import app
from growthengine.domain.messages import Message
from growthengine.simulate.outcomes import flow_uplift

DAY = 86_400_000_000


def message(n: int, user: str, flow: str, at: int, *, held: bool = False, status: str = "sent") -> Message:
    return Message(id=f"m{n}", user_id=user, flow=flow, step="s", channel="push", kind="marketing",
                   status="suppressed" if held else status, reason="holdout" if held else None, scheduled_us=at,
                   updated_us=at, sent_us=None if held else at, body="")


def test_each_user_counts_once_per_flow_over_a_whole_window() -> None:
    messages = [
        message(1, "a", "f", 1 * DAY), message(2, "a", "f", 2 * DAY),  # a: first decision day 1, bought day 3
        message(3, "b", "f", 1 * DAY),  # b: bought day 5, after the window
        message(4, "c", "f", 1 * DAY, held=True),  # c: control, bought day 2
        message(5, "d", "f", 1 * DAY, held=True),
        message(6, "e", "f", 9 * DAY),  # e: window runs past the end: left out
        message(7, "a", "g", 1 * DAY, status="failed"),  # neither reached nor held out
        message(8, "x", "h", 1 * DAY),  # a flow without a control group
    ]
    orders = [("a", 3 * DAY, 100.0), ("a", 3 * DAY + 1, 50.0), ("b", 5 * DAY, 70.0), ("c", 2 * DAY, 40.0)]
    [f, h] = flow_uplift(messages, orders, window_us=3 * DAY, end_us=10 * DAY)
    assert (f.flow, f.treated, f.control, f.treated_converted, f.control_converted) == ("f", 2, 2, 1, 1)
    assert (f.treated_gmv, f.control_gmv) == (150.0, 40.0)
    assert f.conversion is not None and f.conversion.value == 0.0
    assert f.gmv_per_user is not None and f.gmv_per_user.value == pytest.approx(75.0 - 20.0)
    assert (h.flow, h.treated, h.control, h.conversion, h.gmv_per_user) == ("h", 1, 0, None, None)


def test_the_intervals_cover_a_known_uplift() -> None:
    rng = np.random.default_rng(3)
    covered = [0, 0]
    for _ in range(400):
        treated = rng.random(3000) < 0.06
        control = rng.random(400) < 0.04
        _, low, high = newcombe_difference(int(treated.sum()), 3000, int(control.sum()), 400)
        covered[0] += low <= 0.02 <= high
        gmv_t = (treated * rng.gamma(2.0, 500.0, 3000)).tolist()
        gmv_c = (control * rng.gamma(2.0, 500.0, 400)).tolist()
        _, low, high = mean_difference(gmv_t, gmv_c)
        covered[1] += low <= 0.02 * 1000.0 <= high
    assert 0.91 <= covered[0] / 400 <= 0.99 and 0.90 <= covered[1] / 400 <= 0.99
    with pytest.raises(ValueError):
        mean_difference([1.0], [1.0, 2.0])


def test_growth_simulate_prints_uplift_verdicts_and_switches(tmp_path: object) -> None:
    result = CliRunner().invoke(app, ["simulate", "--users", "150", "--days", "6", "--db",
                                      f"sqlite:///{tmp_path}/sim.db"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Uplift per flow against the control group" in out and "conversion uplift" in out
    assert "GMV uplift per user" in out and "control group: 10 % of users" in out
    assert "camera_deals.camera_push" in out and "channel scores (SPEC 4.C)" in out

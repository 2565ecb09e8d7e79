"""``growth bench segments --instant`` at a tiny size: the timers fire, every user enters, the figures add up.

Not a timing test: the figures only have to be there and agree with what was stored.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from growthengine.bench.segment_timers import InstantSize, run_instant_bench
from growthengine.cli.app import app


def _stage(name: str, total: int) -> object:
    return lambda n: None


def test_instant_bench_fires_every_timer_with_no_flow_listening(tmp_path: Path) -> None:
    r = run_instant_bench(InstantSize(timers=60, batch=25), tmp_path, _stage)
    assert (r.pending, r.entered, r.left) == (60, 60, 0) and r.fired >= 60
    assert r.listeners_s == 0 and r.seconds > 0 and r.rate == r.own_rate > 0


def test_instant_bench_with_the_flows_and_cold_states_reports_their_share_apart(tmp_path: Path) -> None:
    r = run_instant_bench(InstantSize(timers=40, batch=40, flows=True, cold=True), tmp_path, _stage)
    assert (r.pending, r.entered, r.left) == (40, 40, 0)
    assert 0 < r.listeners_s < r.seconds and r.own_rate > r.rate > 0


def test_the_command_prints_the_figure_against_the_target(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "segments", "--instant", "--timers", "30", "--db-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "own share (30 timers, 30 entries, " in result.output and "target >= 50,000 /s" in result.output

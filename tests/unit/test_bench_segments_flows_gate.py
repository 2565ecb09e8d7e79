"""``growth bench segments|flows|gate`` at a tiny size: every figure is measured and positive.

Not a timing test: the figures only have to be there and add up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from growthengine.bench.flows import FlowsSize, run_flows_bench
from growthengine.bench.gate import GateSize, run_gate_bench
from growthengine.bench.segments import SegmentsSize, run_segments_bench


def _stages() -> tuple[dict[str, list[int]], Callable[[str, int], Callable[[int], None]]]:
    seen: dict[str, list[int]] = {}

    def stage(name: str, total: int) -> Callable[[int], None]:
        seen[name] = [total]
        return seen[name].append

    return seen, stage


def test_segments_bench_measures_every_figure(tmp_path: Path) -> None:
    seen, stage = _stages()
    size = SegmentsSize(users=200, events=1_000, batch=100, paced_rate=500.0, paced_seconds=0.4, paced_batch=50,
                        baseline_rows=1_000, timers=100)
    report = run_segments_bench(size, tmp_path, stage)
    assert report.ingest.events == 1_000 and report.ingest.rate > 0 and report.stage_rate > 0
    assert 0 < report.ingest.details["state_hit_share"] < 1
    assert report.bare.events == 1_000 and report.bare.rate > 0 and report.ratio > 0
    assert report.paced_events == 200 and len(report.latencies_ms) == 4 and report.p99_ms > 0
    assert report.timers.details["segment_timers"] >= 100 and report.timers.rate > 0
    assert report.segment_timer_rate > 0
    assert report.rebuild.seconds > 0 and report.rebuild.events >= 1_300
    assert report.rss_mb > 0 and report.counts["members cart_abandoners"] > 0
    assert {"ingest", "paced 5k/s", "carts", "segment timers", "rebuild", "bare append"} <= set(seen)


def test_flows_bench_fans_out_and_idles(tmp_path: Path) -> None:
    _, stage = _stages()
    report = run_flows_bench(FlowsSize(favoriters=50, waiting=30, idle_seconds=0.3, worker_interval_s=0.1),
                             tmp_path, stage)
    assert report.fanout_users == 50 and report.sent == 50 and report.outbox == 50 and report.fanout_rate > 0
    assert report.waiting_runs == 30 and report.fired_while_idle == 0
    assert report.polls >= 2 and report.idle_seconds > 0 and report.idle_cpu_s >= 0


def test_gate_bench_decides_and_flushes(tmp_path: Path) -> None:
    _, stage = _stages()
    report = run_gate_bench(GateSize(messages=600, flush_messages=300, batch=200), tmp_path, stage)
    assert report.decisions == 600 and report.rate > 0
    assert sum(report.actions.values()) == 600 and "send" in report.actions
    assert report.flushed == 300 and report.flush_rate > 0 and sum(report.statuses.values()) == 300


def test_flows_bench_runs_only_the_part_asked_for(tmp_path: Path) -> None:
    _, stage = _stages()
    report = run_flows_bench(FlowsSize(favoriters=40, waiting=30, carts=20, idle_seconds=0.3), tmp_path, stage,
                             only="price-drop")
    assert report.fanout_users == 40 and report.sent == 40 and report.outbox == 40
    assert report.cart_users == 0 and report.waiting_runs == 0 and report.polls == 0
    with pytest.raises(ValueError, match="unknown part"):
        run_flows_bench(FlowsSize(favoriters=1), tmp_path, stage, only="everything")

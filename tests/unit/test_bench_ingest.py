"""``growth bench ingest`` at a tiny size: the workload is realistic and every measurement gives sane figures.

Not a timing test: the figures only have to be positive and add up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from growthengine.bench.ingest import measure_http, run_ingest_bench
from growthengine.bench.workload import make_workload
from growthengine.timefmt import parse_instant

EVENTS = 2_000


def test_the_workload_follows_the_tracking_plan_and_is_seeded() -> None:
    workload = make_workload(EVENTS, users=500, seed=3)
    calls = workload.calls
    assert len(calls) == EVENTS
    assert calls == make_workload(EVENTS, users=500, seed=3).calls
    assert calls != make_workload(EVENTS, users=500, seed=4).calls
    assert all(c.get("messageId") for c in calls)
    assert len({c["messageId"] for c in calls}) == EVENTS
    assert all(parse_instant(c["timestamp"]) <= workload.now for c in calls)
    events = {c.get("event") for c in calls if c["type"] == "track"}
    assert {"item_viewed", "add_to_cart", "purchase", "app_opened"} <= events
    identifies = [c for c in calls if c["type"] == "identify" and "traits" in c and "email" in c["traits"]]
    assert identifies and all("consent" in c["traits"] for c in identifies)
    text = str(calls)
    assert any("\u0e00" <= ch <= "\u0e7f" for ch in text)  # Thai script in properties and traits
    assert any("anonymousId" in c and "userId" not in c for c in calls)


def test_bare_and_in_process_measurements(tmp_path: Path) -> None:
    stages: dict[str, list[int]] = {}

    class Stages:
        def stage(self, name: str, total: int) -> Callable[[int], None]:
            stages[name] = [total]
            return stages[name].append

    report = run_ingest_bench(make_workload(EVENTS, users=500), tmp_path, http=False, core=True, progress=Stages())
    in_process, bare = report.in_process, report.bare
    assert in_process.events == bare.events == EVENTS
    assert in_process.details["rejected"] == 0 and in_process.details["duplicates"] == 0
    assert in_process.seconds > 0 and in_process.rate > 0 and in_process.cpu_s > 0
    assert 0 <= sum(in_process.details["listener_s"].values()) < in_process.seconds
    assert bare.rate > 0 and bare.details["transactions"] == EVENTS // 100
    assert report.in_process_ratio == pytest.approx(in_process.rate / bare.rate)
    assert report.http is None and report.http_ok is None
    assert report.core is not None and report.core.events == EVENTS and report.core.details["listener_s"] == {}
    # Every stage's progress adds up to its total.
    assert set(stages) == {"in process", "bare append", "no listeners"}
    assert all(sum(v[1:]) == v[0] for v in stages.values())


@pytest.mark.e2e
def test_http_measurement_against_a_real_server(tmp_path: Path) -> None:
    workload = make_workload(EVENTS, users=500)
    advanced: list[int] = []
    http = measure_http(workload, tmp_path / "http.db", connections=4, progress=advanced.append)
    assert http.events == EVENTS and sum(advanced) == EVENTS
    assert http.rate > 0 and http.details["requests"] == EVENTS // 100
    assert http.details["rejected"] == 0
    assert 0 < http.details["client_cpu_share"] and math.isfinite(http.details["server_cpu_share"])
    assert http.details["latency_p99_ms"] >= http.details["latency_p50_ms"] > 0

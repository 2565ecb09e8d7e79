"""``growth bench freshness`` at a small size (a smoke test; the 5,000 events/s run stays out of CI): a paced
stream through a real server, every probe's segment change seen over the API, the pushes of the price drop made
through the provider double, and the latencies measured from real requests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from growthengine.bench.freshness import FreshnessRun, freshness_run, pooled, provider_order, summary
from growthengine.bench.workload import live_workload, make_workload
from growthengine.clock import RealClock
from tests.pg_cluster import PgCluster


def test_a_paced_stream_has_every_probe_seen_and_every_push_made(tmp_path: Path) -> None:
    workload = make_workload(1_000, users=100, seed=11)
    run = freshness_run(workload, tmp_path, "smoke", rate=400, seconds=2.5, connections=2, provider_delay_s=0.2)
    s = summary(run)
    assert run.sent_events == 1_000, "ten batches of 100 calls (probes replace two calls each)"
    assert s["probes"] == 5 and s["unseen"] == 0, "a probe every other batch (half a second), each one seen in high_ltv"
    assert s["fresh_max_ms"] >= s["fresh_p50_ms"] > 0 and s["ingest_p99_ms"] >= s["ingest_p50_ms"] > 0
    assert run.provider_calls == 20, "each favoriter's price-drop push reached the provider once"


@pytest.mark.postgres
def test_a_paced_stream_on_an_api_and_two_workers(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """The same stream on PostgreSQL with ``growth serve --api-only`` and two ``growth worker`` processes: the
    probes' segment changes and the favoriters' pushes are made by the workers."""
    workload = make_workload(600, users=60, seed=12)
    run = freshness_run(workload, tmp_path, "workers", rate=300, seconds=2.0, connections=2, provider_delay_s=0.1,
                        db_url=pg_cluster.new_database(), workers=2)
    s = summary(run)
    assert s["probes"] == 3 and s["unseen"] == 0, "every probe seen, though no API process runs a stage"
    assert run.provider_calls == 20, "each favoriter's price-drop push reached the provider once, from a worker"


def test_the_providers_alternate_so_a_drift_weighs_on_both_and_runs_pool_into_one() -> None:
    assert provider_order(1) == [False, True]
    assert provider_order(2) == [False, True, True, False]
    assert provider_order(3) == [False, True, True, False, False, True]
    first = FreshnessRun("a", 400.0, sent_events=100, seconds=1.0, ingest_ms=[1.0, 2.0], fresh_ms=[10.0], unseen=1,
                         provider_calls=20, pushes_during_run=5)
    second = FreshnessRun("b", 400.0, sent_events=300, seconds=1.0, ingest_ms=[3.0], fresh_ms=[30.0, 20.0])
    both = pooled([first, second], "pooled")
    assert (both.label, both.sent_events, both.achieved_per_s) == ("pooled", 400, 200.0)
    assert sorted(both.ingest_ms) == [1.0, 2.0, 3.0] and sorted(both.fresh_ms) == [10.0, 20.0, 30.0]
    assert (both.unseen, both.provider_calls, both.pushes_during_run) == (1, 20, 5)
    assert first.ingest_ms == [1.0, 2.0], "the runs themselves are left as they were"


def test_the_real_clock_benchmarks_stream_events_dated_the_minutes_before_now() -> None:
    """On the real clock a stream dated at the manual-clock benchmarks' instant would be months late to the engine
    (every segment entry found late, no flow started): the live workload is dated the 15 minutes before now."""
    before = RealClock().now()
    workload = live_workload(500, users=50, seed=3)
    after = RealClock().now()
    stamps = [dt.datetime.fromisoformat(c["timestamp"]) for c in workload.calls]
    assert all(before - dt.timedelta(minutes=17) <= t <= after for t in stamps)
    assert max(stamps) - min(stamps) > dt.timedelta(minutes=10), "spread over the span, not one instant"

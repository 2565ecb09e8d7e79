"""``growth bench freshness`` at a small size (a smoke test; the 5,000 events/s run stays out of CI): a paced
stream through a real server, every probe's segment change seen over the API, the pushes of the price drop made
through the provider double, and the latencies measured from real requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from growthengine.bench.freshness import freshness_run, summary
from growthengine.bench.workload import make_workload
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

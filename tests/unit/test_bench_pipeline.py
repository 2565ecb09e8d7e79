"""``growth bench pipeline`` at a small size (a smoke test; full-size runs stay out of CI): a real server on the
real clock takes the burst, every stage catches up, and the figures are measured, not made up."""

from __future__ import annotations

from pathlib import Path

import pytest

from growthengine.bench.pipeline import api_only_burst, reads_under_load, sqlite_bench, summary
from growthengine.bench.scale_out import scale_out
from growthengine.bench.workload import make_workload
from tests.pg_cluster import PgCluster


def test_the_sqlite_burst_is_acknowledged_then_applied_end_to_end(tmp_path: Path) -> None:
    workload = make_workload(600, users=100, seed=3)
    bench = sqlite_bench(workload, tmp_path, connections=2)
    s = summary(bench)
    assert bench.acknowledged.events == 600 and bench.bare.events == 600
    assert s["acknowledged_per_s"] > 0 and s["bare_per_s"] > 0 and s["end_to_end_per_s"] > 0
    assert bench.end_to_end_s >= bench.acknowledged.seconds, "applied end to end only after it was acknowledged"
    assert s["reads"] > 0 and s["read_p99_ms"] >= s["read_p50_ms"] > 0


@pytest.mark.postgres
def test_one_and_two_workers_work_through_a_backlog(pg_cluster: PgCluster, tmp_path: Path) -> None:
    workload = make_workload(400, users=80, seed=5)
    drains = scale_out(workload, (pg_cluster.new_database(), pg_cluster.new_database()), tmp_path)
    assert set(drains) == {1, 2}
    assert all(d.total_s > d.working_s > 0 for d in drains.values()), drains


def test_reads_are_timed_while_sixteen_clients_post_the_burst(tmp_path: Path) -> None:
    workload = make_workload(800, users=100, seed=4)
    loaded = reads_under_load(workload, tmp_path, connections=16)
    assert loaded.connections == 16 and loaded.acknowledged.events == 800
    assert loaded.reads_ms and loaded.percentile(0.99) >= loaded.percentile(0.5) > 0


def test_the_api_only_burst_measures_the_servers_cpu_by_thread(tmp_path: Path) -> None:
    # Large enough that each thread's share is over the kernel's 10 ms accounting tick: at 600 events the writer's
    # few milliseconds sometimes read as 0.
    workload = make_workload(4_000, users=400, seed=6)
    run = api_only_burst(workload, f"sqlite:///{tmp_path / 'api.db'}", tmp_path, "api", connections=2)
    assert run.events == 4_000 and run.rate > 0
    loop_s, writer_s = run.details["loop_cpu_s"], run.details["other_threads_cpu_s"]
    # Both the event loop (HTTP, JSON, validation) and the ingest writer worked, and no more than the whole process.
    assert loop_s > 0 and writer_s > 0 and loop_s + writer_s <= run.cpu_s + 0.05
    assert "bare" not in run.details  # the bare append is PostgreSQL's comparison here


@pytest.mark.postgres
def test_the_api_only_burst_on_postgres_has_its_bare_append(pg_cluster: PgCluster, tmp_path: Path) -> None:
    workload = make_workload(400, users=80, seed=6)
    run = api_only_burst(workload, pg_cluster.new_database(), tmp_path, "api-pg", connections=2)
    assert run.events == 400 and run.details["bare"].events == 400 and run.details["bare"].rate > 0

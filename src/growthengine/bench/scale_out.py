"""``growth bench pipeline --pg``'s scale-out: one ``growth worker`` and then two working through the same stored
backlog on PostgreSQL, timed from the processes' start and from the first partition a worker takes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from growthengine.bench.ingest import BenchError
from growthengine.bench.pipeline import Process, Server, look_again_s
from growthengine.bench.workload import Workload


@dataclass(frozen=True)
class Drain:
    """How long ``growth worker`` processes took to work through one stored backlog."""

    total_s: float
    """From starting the processes to nothing left behind."""
    working_s: float
    """From the first partition a worker took (its interpreter started, the engine wired: about 2 s of one core
    each here, the same for one worker or two) to nothing left behind: what the workers' number changes."""


def scale_out(workload: Workload, urls: tuple[str, str], work_dir: Path) -> dict[int, Drain]:
    """1 and 2 ``growth worker`` processes working through the same stored backlog."""
    out: dict[int, Drain] = {}
    for workers, url in zip((1, 2), urls, strict=True):
        api = Server(url, work_dir, f"backlog{workers}", api_only=True)
        api.wait_ready()
        with httpx.Client(base_url=api.base, headers=api.headers, timeout=120) as client:
            for batch in workload.batches(1000):
                answer = client.post("/v1/batch", json={"batch": batch})
                if answer.status_code != 200:
                    raise BenchError(f"backlog ingest failed: {answer.status_code} {answer.text[:200]}")
        began = time.perf_counter()
        procs = [Process(["worker", "--db", url], work_dir, f"w{workers}-{i}", api.key) for i in range(workers)]
        try:
            _wait_for_a_lease(url, began, procs[0])
            working = time.perf_counter()
            while (behind := api.behind()) > 0:
                if time.perf_counter() - began > 900:
                    raise BenchError(f"{workers} worker(s) did not catch up within 15 minutes")
                time.sleep(look_again_s(behind))
            done = time.perf_counter()
            out[workers] = Drain(total_s=done - began, working_s=done - working)
        finally:
            for p in procs:
                p.stop()
            api.stop()
    return out


def _wait_for_a_lease(url: str, began: float, worker: Process) -> None:
    """Until a worker holds a partition (a cheap look at the leases every 20 ms: ``GET /v1/pipeline`` also counts
    every stage's backlog, which costs the server more than a worker starting)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        while conn.execute("SELECT 1 FROM partition_leases WHERE owner IS NOT NULL LIMIT 1").fetchone() is None:
            if time.perf_counter() - began > 120:
                raise BenchError(f"no worker took a partition within 2 minutes: {worker.tail()}")
            time.sleep(0.02)

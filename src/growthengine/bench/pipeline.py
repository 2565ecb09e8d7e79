"""``growth bench pipeline``: the engine shaped as a log read by stages, measured on the real clock.

- SQLite over HTTP: a real ``growth serve`` (its embedded worker in background threads) takes the tracking plan's
  mix in 100-call batches from a load generator in its own process: events/s acknowledged, then end to end (until
  every stage has caught up, all default segments and flows live), against a bare append of the same rows at the
  same transaction size, in the same run; ``GET /v1/users/{id}`` timed while the writes go on.
- PostgreSQL (with ``--pg URL``): the same burst acknowledged against a bare psycopg append with the profile upsert;
  then one ``growth worker`` against two on the same backlog (``scale_out.py``).
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from growthengine.bench.ingest import (
    _EVENT_COLUMNS,
    Advance,
    BenchError,
    Measurement,
    _free_port,
    _process_cpu_s,
    _run_loadgen,
    measure_bare,
)
from growthengine.bench.loadgen import write_bodies
from growthengine.bench.workload import Workload

BATCH = 100


@dataclass
class PipelineBench:
    backend: str
    events: int
    acknowledged: Measurement
    end_to_end_s: float
    bare: Measurement
    reads_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def end_to_end_rate(self) -> float:
        return self.events / self.end_to_end_s if self.end_to_end_s else 0.0

    @property
    def ratio(self) -> float:
        return self.acknowledged.rate / self.bare.rate if self.bare.rate else 0.0

    def read_percentile(self, q: float) -> float:
        if not self.reads_ms:
            return float("nan")
        ordered = sorted(self.reads_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Process:
    """A ``growth`` process (serve or worker) on the real clock, its output in a file."""

    def __init__(self, args: list[str], work_dir: Path, name: str, key: str) -> None:
        self.log_path = work_dir / f"{name}.log"
        env = {**os.environ, "GROWTH_API_KEY": key, "GROWTH_DATA_DIR": str(work_dir / f"{name}-data"),
               "PYTHONUNBUFFERED": "1"}
        env.pop("GROWTH_DB_URL", None)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "growthengine.cli", *args],  # noqa: S603
                                         cwd=work_dir, env=env, stdout=log, stderr=subprocess.STDOUT)

    def tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


WARM_UP_USER = "bench-warm-up"
"""The user of the one event a burst stores before it starts (``Server.wait_worker``)."""
_STORED_EVENTS = (f"SELECT {_EVENT_COLUMNS} FROM events "  # noqa: S608 (constants)
                  f"WHERE type != 'command' AND user_id != '{WARM_UP_USER}' ORDER BY id")


class Server:
    def __init__(self, db_url: str, work_dir: Path, name: str, *, api_only: bool = False,
                 extra_args: list[str] | None = None) -> None:
        self.port = _free_port()
        self.key = "ge_bench_" + secrets.token_urlsafe(16)
        args = ["serve", "--db", db_url, "--host", "127.0.0.1", "--port", str(self.port), *(extra_args or [])]
        self.process = Process([*args, "--api-only"] if api_only else args, work_dir, name, self.key)
        self.proc = self.process.proc
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {self.key}"}

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"growth serve exited ({self.proc.returncode}): {self.process.tail()}")
            try:
                if httpx.get(f"{self.base}/v1/clock", headers=self.headers, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise BenchError(f"growth serve did not answer within {timeout_s:.0f}s: {self.process.tail()}")

    def wait_worker(self, timeout_s: float = 120.0) -> None:
        """Until the worker applies what is posted: a worker process may still be starting when the API answers,
        and a burst timed from then would count its start-up as the engine's time (one event is stored for it, by
        :data:`WARM_UP_USER`, left out of the bare append's rows)."""
        probe = {"type": "track", "userId": WARM_UP_USER, "event": "app_opened"}
        httpx.post(f"{self.base}/v1/batch", json={"batch": [probe]}, headers=self.headers, timeout=30)
        deadline = time.perf_counter() + timeout_s
        while self.behind() > 0:
            if time.perf_counter() > deadline:
                raise BenchError(f"the worker applied nothing within {timeout_s:.0f}s: {self.process.tail()}")
            time.sleep(0.05)

    def behind(self) -> int:
        stages = httpx.get(f"{self.base}/v1/pipeline", headers=self.headers, timeout=30).json()["stages"]
        return max(int(s["behind"]) for s in stages)

    def stop(self) -> None:
        self.process.stop()


def look_again_s(behind: int) -> float:
    """How long to wait before asking ``GET /v1/pipeline`` again. Each look counts the rows every stage has not
    applied (on PostgreSQL 0.2 s of server time at 30,000 behind): looking every 0.2 s while far behind took a
    third of a core from the stages being timed. Far behind, look seldom (up to every 2 s); near the end every
    0.2 s. The wait is never longer than the stages would need for what is left at 20,000 rows/s, so below that
    rate the time measured is at most 0.2 s late."""
    return min(2.0, max(0.2, behind / 20_000))


def _reads(server: Server, users: list[str], stop: threading.Event, out: list[float]) -> None:
    """``GET /v1/users/{id}`` one after another while the writes go on (404s count: the read was served)."""
    with httpx.Client(base_url=server.base, headers=server.headers, timeout=30) as client:
        i = 0
        while not stop.is_set():
            began = time.perf_counter()
            client.get(f"/v1/users/{users[i % len(users)]}")
            out.append((time.perf_counter() - began) * 1000)
            i += 1
            time.sleep(0.01)


def burst(workload: Workload, db_url: str, work_dir: Path, name: str, *, connections: int,
          progress: Advance | None = None) -> tuple[Measurement, float, list[float], Server]:
    """The burst through a real server whose worker is running: acknowledged (the load generator's figure), seconds
    until every stage caught up (from the first request), and read latencies during it. The server is left running
    for the caller."""
    bodies = [(orjson.dumps({"batch": b}), len(b)) for b in workload.batches(BATCH)]
    bodies_file = work_dir / f"{name}.bodies"
    write_bodies(bodies_file, bodies)
    server = Server(db_url, work_dir, name)
    server.wait_ready()
    server.wait_worker()
    users = sorted({str(c["userId"]) for c in workload.calls if "userId" in c})[:1000] or ["nobody"]
    stop = threading.Event()
    reads: list[float] = []
    reader = threading.Thread(target=_reads, args=(server, users, stop, reads), daemon=True)
    reader.start()
    try:
        load = _run_loadgen(server, bodies_file, connections, progress)  # type: ignore[arg-type]
    finally:
        stop.set()
        reader.join(timeout=30)
        bodies_file.unlink(missing_ok=True)
    if load.errors:
        server.stop()
        raise BenchError(f"{len(load.errors)} request(s) failed, first: {load.errors[0]}")
    deadline = time.perf_counter() + 600
    while (behind := server.behind()) > 0:
        if time.perf_counter() > deadline:
            server.stop()
            raise BenchError("the stages did not catch up within 10 minutes")
        time.sleep(look_again_s(behind))
    end_to_end = time.perf_counter() - load.started_at  # from the first request, not the client's start-up
    latencies = sorted(load.latencies_ms)
    details = {"connections": connections, "requests": load.requests,
               "latency_p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
               "latency_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0}
    return Measurement(f"{name}: acknowledged", load.accepted, load.seconds, 0.0, details), end_to_end, reads, server


@dataclass
class ReadsUnderLoad:
    """``GET /v1/users/{id}`` one call after another while ``connections`` clients post the burst (SQLite)."""

    connections: int
    acknowledged: Measurement
    reads_ms: list[float]

    def percentile(self, q: float) -> float:
        if not self.reads_ms:
            return float("nan")
        ordered = sorted(self.reads_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def reads_under_load(workload: Workload, work_dir: Path, *, connections: int = 16,
                     progress: Advance | None = None) -> ReadsUnderLoad:
    """The burst again on a fresh SQLite database with ``connections`` clients (the issue's 16 connections of
    sustained ingestion), reads timed throughout; the server stops when the last request is answered."""
    bodies = [(orjson.dumps({"batch": b}), len(b)) for b in workload.batches(BATCH)]
    bodies_file = work_dir / "reads.bodies"
    write_bodies(bodies_file, bodies)
    server = Server(f"sqlite:///{work_dir / 'reads.db'}", work_dir, "reads")
    try:
        server.wait_ready()
        users = sorted({str(c["userId"]) for c in workload.calls if "userId" in c})[:1000] or ["nobody"]
        stop = threading.Event()
        reads: list[float] = []
        reader = threading.Thread(target=_reads, args=(server, users, stop, reads), daemon=True)
        reader.start()
        try:
            load = _run_loadgen(server, bodies_file, connections, progress)  # type: ignore[arg-type]
        finally:
            stop.set()
            reader.join(timeout=30)
    finally:
        server.stop()
        bodies_file.unlink(missing_ok=True)
    if load.errors:
        raise BenchError(f"{len(load.errors)} request(s) failed, first: {load.errors[0]}")
    return ReadsUnderLoad(connections, Measurement(f"{connections} connections: acknowledged", load.accepted,
                                                   load.seconds, 0.0, {}), reads)


def _threads_cpu_s(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of a process, by thread id (Linux ``/proc``)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def api_only_burst(workload: Workload, db_url: str, work_dir: Path, name: str, *, connections: int = 4,
                   progress: Advance | None = None) -> Measurement:
    """The burst through ``growth serve --api-only`` (no stage runs in the process): acknowledged, and the server's
    CPU per event split between its event loop (HTTP, JSON, validation: the main thread) and the rest (the ingest
    writer thread, which stores and commits). On PostgreSQL ``details["bare"]`` is the bare append of the rows the
    server stored, measured right after on the same server (``postgres_bare``)."""
    bodies = [(orjson.dumps({"batch": b}), len(b)) for b in workload.batches(BATCH)]
    bodies_file = work_dir / f"{name}.bodies"
    write_bodies(bodies_file, bodies)
    server = Server(db_url, work_dir, name, api_only=True)
    try:
        server.wait_ready()
        pid = server.proc.pid
        cpu0, threads0 = _process_cpu_s(pid), _threads_cpu_s(pid)
        load = _run_loadgen(server, bodies_file, connections, progress)  # type: ignore[arg-type]
        cpu1, threads1 = _process_cpu_s(pid), _threads_cpu_s(pid)
    finally:
        server.stop()
        bodies_file.unlink(missing_ok=True)
    if load.errors:
        raise BenchError(f"{len(load.errors)} request(s) failed, first: {load.errors[0]}")
    used = {t: s - threads0.get(t, 0.0) for t, s in threads1.items()}
    loop_s = used.get(pid, 0.0)
    latencies = sorted(load.latencies_ms)
    details: dict[str, Any] = {
        "connections": connections, "requests": load.requests,
        "loop_cpu_s": loop_s, "other_threads_cpu_s": sum(used.values()) - loop_s,
        "latency_p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "latency_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0,
    }
    if db_url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            rows = conn.execute(_STORED_EVENTS).fetchall()
        details["bare"] = postgres_bare([tuple(r) for r in rows], db_url)
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else float("nan")
    return Measurement(f"{name}: acknowledged, API only", load.accepted, load.seconds, cpu, details)


def sqlite_bench(workload: Workload, work_dir: Path, *, connections: int = 4,
                 progress: Advance | None = None) -> PipelineBench:
    db = work_dir / "pipeline.db"
    ack, e2e, reads, server = burst(workload, f"sqlite:///{db}", work_dir, "sqlite", connections=connections,
                                    progress=progress)
    server.stop()
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute(_STORED_EVENTS).fetchall()
    bare = measure_bare(rows, work_dir / "bare.db", batch=BATCH)
    return PipelineBench("sqlite", len(workload.calls), ack, e2e, bare, reads)


def postgres_bare(rows: list[tuple[Any, ...]], url: str) -> Measurement:
    """A bare psycopg append of the same rows with the profile upsert, ``BATCH`` rows a transaction."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        conn.execute("CREATE TABLE bare_events (id bigserial PRIMARY KEY, message_id text UNIQUE, type text, "
                     "name text, user_id text, anonymous_id text, ts_us bigint, received_us bigint, payload text, "
                     "extra text)")
        conn.execute("CREATE TABLE bare_profiles (user_id text PRIMARY KEY, updated_us bigint)")
        conn.commit()
        began = time.perf_counter()
        with conn.cursor() as cur:
            for i in range(0, len(rows), BATCH):
                chunk = rows[i:i + BATCH]
                cur.executemany(f"INSERT INTO bare_events ({_EVENT_COLUMNS}) VALUES "  # noqa: S608
                                "(%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING", chunk)
                users = sorted({r[3] for r in chunk})
                cur.executemany("INSERT INTO bare_profiles (user_id, updated_us) VALUES (%s, %s) ON CONFLICT "
                                "(user_id) DO UPDATE SET updated_us = excluded.updated_us",
                                [(u, 0) for u in users])
                conn.commit()
        seconds = time.perf_counter() - began
    return Measurement("bare psycopg append + profile upsert", len(rows), seconds, 0.0, {})


def postgres_bench(workload: Workload, url: str, work_dir: Path, *, connections: int = 4,
                   progress: Advance | None = None) -> PipelineBench:
    ack, e2e, reads, server = burst(workload, url, work_dir, "postgres", connections=connections, progress=progress)
    server.stop()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(_STORED_EVENTS).fetchall()
    bare = postgres_bare([tuple(r) for r in rows], url)
    return PipelineBench("postgresql", len(workload.calls), ack, e2e, bare, reads)


def summary(bench: PipelineBench) -> dict[str, Any]:
    return {"backend": bench.backend, "events": bench.events, "acknowledged_per_s": round(bench.acknowledged.rate),
            "bare_per_s": round(bench.bare.rate), "ratio_to_bare": round(bench.ratio, 3),
            "end_to_end_per_s": round(bench.end_to_end_rate),
            "ack_p50_ms": round(bench.acknowledged.details["latency_p50_ms"], 1),
            "ack_p99_ms": round(bench.acknowledged.details["latency_p99_ms"], 1),
            "read_p50_ms": round(statistics.median(bench.reads_ms), 1) if bench.reads_ms else None,
            "read_p99_ms": round(bench.read_percentile(0.99), 1) if bench.reads_ms else None,
            "reads": len(bench.reads_ms)}

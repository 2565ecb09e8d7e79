"""``growth bench ingest``: how fast events are stored, against a bare SQLite append of the same rows.

Three measurements, each on a fresh SQLite file in one directory:

* **bare append** (the baseline): the rows the engine stored, inserted straight with ``sqlite3`` ``executemany``
  into a table made from the engine's own ``events`` metadata (same indexes), on a connection made by the
  engine's own SQLite set-up (same pragmas: WAL, ``synchronous=NORMAL``, ...), 100 rows a transaction, as the
  engine commits one batch a transaction;
* **in process**: ``Engine.ingest(batch)`` with batches of 100 decoded calls, on an engine wired by
  :func:`growthengine.bootstrap.build_engine` (segment engine included) on a manual clock;
* **HTTP**: ``growth serve`` in its own process on 127.0.0.1, and a load generator in another process posting
  pre-serialized 100-call bodies to ``POST /v1/batch`` over several keep-alive connections.

Time is measured with ``time.perf_counter``; the engine itself never reads the wall clock.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson

from growthengine.bench.loadgen import LoadResult, write_bodies
from growthengine.bench.workload import Workload
from growthengine.domain.events import Event
from growthengine.domain.profiles import Profile
from growthengine.engine import Engine
from growthengine.pipeline.stages import EventConsumer, Stage
from growthengine.storage.unit_of_work import Tx

BATCH_SIZE = 100
TARGET_HTTP_RATE = 25_000.0
"""events/s through ``POST /v1/batch`` on the embedded default."""
TARGET_IN_PROCESS_RATIO = 0.5
"""in-process events/s as a share of the bare-append rate."""

_EVENT_COLUMNS = "message_id, type, name, user_id, anonymous_id, ts_us, received_us, payload, extra"
_DB_FILES = ("bare.db", "in_process.db", "core.db", "http.db")

Advance = Callable[[int], None]


class BenchError(RuntimeError):
    """A measurement could not be made; the message says why."""


class BenchProgress(Protocol):
    def stage(self, name: str, total: int) -> Advance:
        """Start a stage of ``total`` events; the returned function advances it."""


class _Quiet:
    def stage(self, name: str, total: int) -> Advance:
        return lambda _n: None


@dataclass(slots=True)
class Measurement:
    """One measured way of storing the workload's events."""

    name: str
    events: int
    seconds: float
    cpu_s: float
    """CPU time of the process that stored the events (the server, over HTTP)."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class IngestBench:
    events: int
    users: int
    bare: Measurement
    in_process: Measurement
    http: Measurement | None
    core: Measurement | None = None
    """In process with the ingest listeners taken out (diagnostic, no target)."""

    @property
    def in_process_ratio(self) -> float:
        return self.in_process.rate / self.bare.rate if self.bare.rate else 0.0

    @property
    def http_ratio(self) -> float | None:
        return self.http.rate / self.bare.rate if self.http is not None and self.bare.rate else None

    @property
    def in_process_ok(self) -> bool:
        return self.in_process_ratio >= TARGET_IN_PROCESS_RATIO

    @property
    def http_ok(self) -> bool | None:
        return self.http.rate >= TARGET_HTTP_RATE if self.http is not None else None


# (a) the baseline ---------------------------------------------------------------------------------------


def measure_bare(rows: list[tuple[Any, ...]], db_file: Path, *, progress: Advance | None = None,
                 batch: int = BATCH_SIZE) -> Measurement:
    """Insert ``rows`` (``events`` columns but ``id``) straight into a fresh table, ``batch`` a transaction."""
    from growthengine.storage.database import create_sqlite_engine
    from growthengine.storage.schema import events

    engine = create_sqlite_engine(f"sqlite:///{db_file}")
    try:
        events.create(engine)  # the engine's own table definition, indexes included
        raw = engine.raw_connection()  # opened by the engine's own SQLite set-up: the same pragmas
        try:
            conn = raw.driver_connection
            assert conn is not None
            sql = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
            cpu0, start = time.process_time(), time.perf_counter()
            for i in range(0, len(rows), batch):
                chunk = rows[i : i + batch]
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, chunk)
                conn.execute("COMMIT")
                if progress is not None:
                    progress(len(chunk))
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            raw.close()
    finally:
        engine.dispose()
    return Measurement("bare SQLite append", stored, seconds, cpu, {"transactions": -(-len(rows) // batch)})


# (b) in process ----------------------------------------------------------------------------------------


class _TimedListener:
    """Forwards to a pipeline stage's consumer and adds up the time it takes (to show the stages' share)."""

    def __init__(self, inner: EventConsumer) -> None:
        self.inner = inner
        self.seconds = 0.0

    def on_events(self, tx: Tx, events: list[Event], profiles: dict[str, Profile]) -> None:
        start = time.perf_counter()
        try:
            self.inner.on_events(tx, events, profiles)
        finally:
            self.seconds += time.perf_counter() - start


def time_stages(engine: Engine, *, enabled: bool = True) -> list[_TimedListener]:
    """Wrap every stage's consumer in a timer (or, with ``enabled`` off, take the stages out)."""
    if not enabled:
        engine.pipeline.stages = []
        return []
    timed: list[_TimedListener] = []
    stages: list[Stage] = []
    for stage in engine.pipeline.stages:
        if stage.consumer is None:
            stages.append(stage)
            continue
        wrapper = _TimedListener(stage.consumer)
        timed.append(wrapper)
        stages.append(Stage(stage.name, wrapper, stage.commands))
    engine.pipeline.stages = stages
    return timed


def measure_in_process(workload: Workload, db_file: Path, *, listeners: bool = True,
                       progress: Advance | None = None) -> tuple[Measurement, list[tuple[Any, ...]]]:
    """``Engine.ingest`` of ``BATCH_SIZE`` calls at a time; also returns the rows the engine stored.

    ``listeners=False`` takes the ingest listeners (segment engine, flows, ...) out: a diagnostic figure for the
    ingestion path alone.
    """
    from growthengine.bootstrap import build_engine
    from growthengine.clock import ManualClock
    from growthengine.settings import Settings

    settings = Settings(db_url=f"sqlite:///{db_file}", data_dir=db_file.parent / f"{db_file.stem}-data",
                        clock="manual", clock_start=workload.now)
    engine = build_engine(settings, clock=ManualClock(workload.now))
    try:
        timed = time_stages(engine, enabled=listeners)
        batches = workload.batches(BATCH_SIZE)
        accepted = duplicates = rejected = 0
        cpu0, start = time.process_time(), time.perf_counter()
        for batch in batches:
            result = engine.ingest(batch)
            accepted += result.accepted
            duplicates += result.duplicates
            rejected += len(result.rejected)
            if progress is not None:
                progress(len(batch))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
        with engine.store.engine.connect() as conn:
            query = f"SELECT {_EVENT_COLUMNS} FROM events WHERE type != 'command' ORDER BY id"  # noqa: S608
            rows = [tuple(r) for r in conn.exec_driver_sql(query)]
    finally:
        engine.close()
    listener_s: dict[str, float] = {}
    for t in timed:
        name = type(t.inner).__name__
        listener_s[name] = listener_s.get(name, 0.0) + t.seconds
    details = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "listener_s": listener_s}
    name = "in process (Engine.ingest)" if listeners else "in process, listeners off"
    return Measurement(name, accepted, seconds, cpu, details), rows


# (c) over HTTP -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc``); None where that cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Server:
    """``growth serve`` on a manual clock, on a free port of 127.0.0.1, with its own data directory."""

    def __init__(self, db_file: Path, workload: Workload) -> None:
        self.port = _free_port()
        self.key = "ge_bench_" + secrets.token_urlsafe(16)
        self.log_path = db_file.with_suffix(".log")
        work_dir = db_file.parent
        env = {**os.environ, "GROWTH_API_KEY": self.key, "GROWTH_DATA_DIR": str(work_dir / "http-data"),
               "PYTHONUNBUFFERED": "1"}
        env.pop("GROWTH_DB_URL", None)
        cmd = [sys.executable, "-m", "growthengine.cli", "serve", "--db", f"sqlite:///{db_file}",
               "--host", "127.0.0.1", "--port", str(self.port), "--clock", "manual",
               "--start", workload.now.isoformat()]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=work_dir, env=env, stdout=log,  # noqa: S603 (our own program)
                                         stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.perf_counter() + timeout_s
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=2.0) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise BenchError(f"growth serve exited with status {self.proc.returncode}: {self.log_tail()}")
                try:
                    if client.get("/v1/clock", headers=headers).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise BenchError(f"growth serve did not answer within {timeout_s:.0f}s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-5:]) or "(empty log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure_http(workload: Workload, db_file: Path, *, connections: int = 8,
                 progress: Advance | None = None) -> Measurement:
    """``POST /v1/batch`` with ``BATCH_SIZE`` calls a request, from a load generator in its own process."""
    bodies = [(orjson.dumps({"batch": batch}), len(batch)) for batch in workload.batches(BATCH_SIZE)]
    bodies_file = db_file.with_suffix(".bodies")
    write_bodies(bodies_file, bodies)
    server = _Server(db_file, workload)
    try:
        server.wait_ready()
        cpu0 = _process_cpu_s(server.proc.pid)
        load = _run_loadgen(server, bodies_file, connections, progress)
        cpu1 = _process_cpu_s(server.proc.pid)
    finally:
        server.stop()
        bodies_file.unlink(missing_ok=True)
    if load.errors:
        raise BenchError(f"{len(load.errors)} request(s) failed, first: {load.errors[0]}; "
                         f"server log: {server.log_tail()}")
    server_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else float("nan")
    latencies = sorted(load.latencies_ms)
    details = {
        "accepted": load.accepted, "duplicates": load.duplicates, "rejected": load.rejected,
        "requests": load.requests, "connections": connections,
        "client_cpu_share": load.client_cpu_s / load.seconds if load.seconds else 0.0,
        "server_cpu_share": server_cpu / load.seconds if load.seconds else 0.0,
        "latency_p50_ms": latencies[len(latencies) // 2] if latencies else 0.0,
        "latency_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0,
    }
    return Measurement("HTTP POST /v1/batch", load.accepted, load.seconds, server_cpu, details)


def _run_loadgen(server: _Server, bodies_file: Path, connections: int, progress: Advance | None) -> LoadResult:
    cmd = [sys.executable, "-m", "growthengine.bench.loadgen", "--port", str(server.port), "--key", server.key,
           "--bodies", str(bodies_file), "--connections", str(connections)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: S603
    assert proc.stdout is not None and proc.stderr is not None
    result: dict[str, Any] | None = None
    shown = 0
    started_at = time.perf_counter()
    for line in proc.stdout:
        kind, _, value = line.strip().partition(" ")
        if kind == "started":
            started_at = time.perf_counter()
        elif kind == "progress":
            done = int(value)
            if progress is not None:
                progress(done - shown)
            shown = done
        elif kind == "result":
            result = orjson.loads(value)
    errors = proc.stderr.read()
    if proc.wait() != 0 or result is None:
        raise BenchError(f"the load generator failed (status {proc.returncode}): {errors.strip()[-500:]}")
    if progress is not None:
        progress(int(result["events"]) - shown)
    return LoadResult(**{**result, "started_at": started_at})


# All three ---------------------------------------------------------------------------------------------


def prepare_dir(db_dir: Path) -> None:
    """Make ``db_dir`` and remove what an earlier run left there (every measurement starts on a fresh file)."""
    db_dir.mkdir(parents=True, exist_ok=True)
    for name in _DB_FILES:
        for suffix in ("", "-wal", "-shm", "-journal"):
            (db_dir / f"{name}{suffix}").unlink(missing_ok=True)


def run_ingest_bench(workload: Workload, db_dir: Path, *, connections: int = 8, http: bool = True,
                     core: bool = False, progress: BenchProgress | None = None) -> IngestBench:
    """The three measurements (and, with ``core``, the in-process one without listeners), on fresh files."""
    stages = progress or _Quiet()
    prepare_dir(db_dir)
    n = len(workload.calls)
    in_process, rows = measure_in_process(workload, db_dir / "in_process.db",
                                          progress=stages.stage("in process", n))
    bare = measure_bare(rows, db_dir / "bare.db", progress=stages.stage("bare append", len(rows)))
    without = None
    if core:
        without, _ = measure_in_process(workload, db_dir / "core.db", listeners=False,
                                        progress=stages.stage("no listeners", n))
    over_http = None
    if http:
        over_http = measure_http(workload, db_dir / "http.db", connections=connections,
                                 progress=stages.stage("HTTP", n))
    return IngestBench(events=n, users=workload.users, bare=bare, in_process=in_process, http=over_http,
                       core=without)

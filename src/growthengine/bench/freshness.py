"""``growth bench freshness``: how soon a paced stream's segment changes are visible, and whether a slow provider
slows ingestion.

A real ``growth serve`` on the real clock takes the tracking plan's mix at a fixed offered rate (100-call batches on
a schedule, several connections). Every half second one batch carries a probe: a new user's 6,000 THB purchase,
which puts them in ``high_ltv`` (real-time). A poller reads ``GET /v1/users/{probe}`` until the segment shows; the
probe's freshness is that moment minus the moment its batch was answered. Ingestion latency is each batch's
request-to-answer time.

Each run has a price drop's pushes to 20 favoriters going out during the stream through a push provider (a local
FCM double); the run is made twice, with the double answering at once and taking ``slow_provider_s`` a call:
ingestion p99 of the two runs side by side.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson

from growthengine.bench.ingest import BenchError
from growthengine.bench.pipeline import Process, Server
from growthengine.bench.workload import Workload
from growthengine.clock import RealClock, system_seconds

BATCH = 100
PROBE_EVERY_S = 0.5
PROBE_SEGMENT = "high_ltv"
FANS = 20


@dataclass
class FreshnessRun:
    label: str
    offered_per_s: float
    sent_events: int = 0
    seconds: float = 0.0
    ingest_ms: list[float] = field(default_factory=list)
    fresh_ms: list[float] = field(default_factory=list)
    unseen: int = 0  # probes never visible before the run's deadline
    provider_calls: int = 0  # pushes the provider received in all (the run waits for the price drop's last one)
    pushes_during_run: int = 0  # of which while the stream was running

    @property
    def achieved_per_s(self) -> float:
        return self.sent_events / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(run: FreshnessRun) -> dict[str, Any]:
    return {"run": run.label, "offered_per_s": round(run.offered_per_s), "achieved_per_s": round(run.achieved_per_s),
            "ingest_p50_ms": round(percentile(run.ingest_ms, 0.5), 1),
            "ingest_p99_ms": round(percentile(run.ingest_ms, 0.99), 1),
            "fresh_p50_ms": round(percentile(run.fresh_ms, 0.5), 1),
            "fresh_p99_ms": round(percentile(run.fresh_ms, 0.99), 1),
            "fresh_max_ms": round(max(run.fresh_ms), 1) if run.fresh_ms else None,
            "probes": len(run.fresh_ms), "unseen": run.unseen, "provider_calls": run.provider_calls,
            "pushes_during_run": run.pushes_during_run}


def provider_order(rounds: int) -> list[bool]:
    """Which provider each run uses (``True``: the slow one), ``rounds`` of one run each, in the order fast, slow,
    slow, fast, fast, slow, ...: a drift of the machine's speed over the runs then weighs on both alike (runs of a
    15 s stream differ by tens of percent in p99 on a shared machine, more than the effect looked for)."""
    order: list[bool] = []
    for r in range(rounds):
        order += [False, True] if r % 2 == 0 else [True, False]
    return order


def pooled(runs: list[FreshnessRun], label: str) -> FreshnessRun:
    """Several runs' latencies as one run's (the percentiles over every request and probe of them)."""
    out = FreshnessRun(label, runs[0].offered_per_s if runs else 0.0)
    for run in runs:
        out.sent_events += run.sent_events
        out.seconds += run.seconds
        out.ingest_ms += run.ingest_ms
        out.fresh_ms += run.fresh_ms
        out.unseen += run.unseen
        out.provider_calls += run.provider_calls
        out.pushes_during_run += run.pushes_during_run
    return out


class _Probes:
    """Probe users waiting to show in the segment, polled by one thread."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.pending: dict[str, float] = {}  # probe user -> when its batch was answered (perf_counter)
        self.seen: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def answered(self, user: str, at: float) -> None:
        with self.lock:
            self.pending[user] = at

    def _poll(self) -> None:
        with httpx.Client(base_url=self.server.base, headers=self.server.headers, timeout=30) as client:
            while not self.stop.is_set():
                with self.lock:
                    waiting = list(self.pending.items())
                for user, answered_at in waiting:
                    view = client.get(f"/v1/users/{user}")
                    if view.status_code == 200 and PROBE_SEGMENT in view.json().get("segments", []):
                        with self.lock:
                            self.pending.pop(user, None)
                        self.seen.append((time.perf_counter() - answered_at) * 1000)
                time.sleep(0.005)


def _probe_calls(index: int) -> list[dict[str, Any]]:
    user = f"probe-{index}"
    return [{"type": "identify", "userId": user, "messageId": f"probe-id-{index}", "traits": {"language": "th"}},
            {"type": "track", "userId": user, "event": "purchase", "messageId": f"probe-buy-{index}",
             "properties": {"order_id": f"probe-order-{index}", "amount": 6000, "listing_ids": ["probe"]}}]


def paced(server: Server, workload: Workload, *, rate: float, seconds: float, connections: int,
          label: str) -> FreshnessRun:
    """Offer ``rate`` events/s for ``seconds`` (batches on a schedule), probing freshness every half second."""
    batches = workload.batches(BATCH)
    total = max(1, int(rate * seconds / BATCH))
    if len(batches) < total:
        raise BenchError(f"the workload holds {len(batches)} batches; {total} are needed")
    interval = BATCH / rate
    probe_every = max(1, round(PROBE_EVERY_S / interval))
    run = FreshnessRun(label, rate)
    probes = _Probes(server)
    counter = itertools.count()
    lock = threading.Lock()
    errors: list[str] = []

    bodies: list[tuple[bytes, int, str | None]] = []  # serialized before the clock starts: the client stays cheap
    for k in range(total):
        calls, probe = batches[k], None
        if k % probe_every == 0:
            probe = f"probe-{k}"
            calls = calls[: BATCH - 2] + _probe_calls(k)
        bodies.append((orjson.dumps({"batch": calls}), len(calls), probe))
    began = time.perf_counter()

    def sender() -> None:
        headers = {**server.headers, "Content-Type": "application/json"}
        with httpx.Client(base_url=server.base, headers=headers, timeout=60) as client:
            while True:
                k = next(counter)
                if k >= total or errors:
                    return
                body, events, probe = bodies[k]
                wait = began + k * interval - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                sent = time.perf_counter()
                answer = client.post("/v1/batch", content=body)
                done = time.perf_counter()
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code}: {answer.text[:200]}")
                    return
                with lock:
                    run.ingest_ms.append((done - sent) * 1000)
                    run.sent_events += events
                if probe is not None:
                    probes.answered(probe, done)

    probes.thread.start()
    threads = [threading.Thread(target=sender, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - began
    deadline = time.perf_counter() + 60
    while probes.pending and time.perf_counter() < deadline:
        time.sleep(0.05)
    probes.stop.set()
    probes.thread.join(timeout=30)
    if errors:
        raise BenchError(f"{len(errors)} request(s) failed, first: {errors[0]}")
    run.fresh_ms = probes.seen
    run.unseen = len(probes.pending)
    return run


class _FcmDouble(BaseHTTPRequestHandler):
    """FCM's v1 send, answering after ``delay_s`` (the provider's own latency). ``received`` holds each call's
    message id (``data.message_id``, the engine's idempotency key) and when it came (system time, seconds)."""

    delay_s = 0.0
    calls = 0
    received: ClassVar[list[tuple[str, float]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        time.sleep(type(self).delay_s)
        with self.lock:
            type(self).calls += 1
            self.received.append((str(body["message"]["data"]["message_id"]), system_seconds()))
        body = json.dumps({"name": "projects/bench/messages/1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def fcm_double(delay_s: float) -> Iterator[tuple[str, type[_FcmDouble]]]:
    handler = type("FcmDouble", (_FcmDouble,), {"delay_s": delay_s, "calls": 0, "received": [],
                                                 "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _warm_up(server: Server, timeout_s: float = 120.0) -> None:
    """Wait until the worker applies what is posted (a worker process may still be starting when the API answers)."""
    calls = _probe_calls(-1)
    httpx.post(f"{server.base}/v1/batch", json={"batch": calls}, headers=server.headers, timeout=60)
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        view = httpx.get(f"{server.base}/v1/users/probe--1", headers=server.headers, timeout=30)
        if view.status_code == 200 and PROBE_SEGMENT in view.json().get("segments", []):
            return
        time.sleep(0.05)
    raise BenchError(f"the worker applied nothing within {timeout_s:.0f}s: {server.process.tail()}")


def _price_drop_fans(server: Server, timezone: str) -> None:
    """``FANS`` users favour one listing; its price drops, so their pushes go out during the stream."""
    traits = {"push_token": "bench-token", "timezone": timezone, "consent": {"push": True}, "language": "th"}
    batch: list[dict[str, Any]] = [{"type": "track", "userId": "bench-seller", "event": "listing_created",
                                    "properties": {"listing_id": "BENCH-L1", "title": "Fuji X100", "price": 20000,
                                                   "category": "กล้องถ่ายรูป"}}]
    for n in range(FANS):
        batch.append({"type": "identify", "userId": f"bench-fan-{n}", "traits": traits})
        batch.append({"type": "track", "userId": f"bench-fan-{n}", "event": "favorite_added",
                      "properties": {"listing_id": "BENCH-L1"}})
    batch.append({"type": "track", "userId": "bench-seller", "event": "listing_price_changed",
                  "properties": {"listing_id": "BENCH-L1", "old_price": 20000, "new_price": 15000}})
    answer = httpx.post(f"{server.base}/v1/batch", json={"batch": batch}, headers=server.headers, timeout=60)
    if answer.status_code != 200:
        raise BenchError(f"the price-drop set-up failed: {answer.status_code} {answer.text[:200]}")


def daytime_zone() -> str:
    """A time zone where it is early afternoon now, so quiet hours hold none of the run's pushes back."""
    offset = (13 - RealClock().now().astimezone(dt.UTC).hour + 12) % 24 - 12
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def freshness_run(workload: Workload, work_dir: Path, label: str, *, rate: float, seconds: float, connections: int,
                  provider_delay_s: float, db_url: str | None = None, workers: int = 0) -> FreshnessRun:
    """One paced run on a fresh database while a price drop's pushes go to an FCM double answering after
    ``provider_delay_s``: on ``growth serve`` (its embedded worker) or, with ``workers`` (PostgreSQL), on
    ``growth serve --api-only`` and that many ``growth worker`` processes."""
    run_dir = work_dir / label
    run_dir.mkdir(parents=True, exist_ok=True)
    url = db_url or f"sqlite:///{run_dir / 'growth.db'}"
    with fcm_double(provider_delay_s) as (base_url, double):
        config = run_dir / "growth.yaml"
        config.write_text(json.dumps({"settings": {
            "channel_providers": {"push": "fcm"},
            "provider_settings": {"fcm": {"project_id": "bench", "access_token": "token", "base_url": base_url,
                                          "attempts": 1}}}}))
        server = Server(url, run_dir, "serve", api_only=workers > 0, extra_args=["--config", str(config)])
        procs = [Process(["worker", "--db", url, "--config", str(config)], run_dir, f"worker-{i}", server.key)
                 for i in range(workers)]
        try:
            server.wait_ready()
            _warm_up(server)
            _price_drop_fans(server, daytime_zone())
            run = paced(server, workload, rate=rate, seconds=seconds, connections=connections, label=label)
            run.pushes_during_run = double.calls
            deadline = time.perf_counter() + 60 + FANS * provider_delay_s
            while double.calls < FANS and time.perf_counter() < deadline:
                time.sleep(0.05)
            run.provider_calls = double.calls
        finally:
            for proc in procs:
                proc.stop()
            server.stop()
    return run

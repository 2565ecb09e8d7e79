"""``growth bench dashboard``: how fast the dashboard's pages and ``GET /v1/kpis`` answer at marketplace scale.

What is seeded (straight into the tables, on a fresh SQLite file, in the engine's own schema) is what the pages
read, at the size 1,000,000 users and 10,000,000 events would leave behind:

* the send ledger (``messages``, default 2,000,000 rows, with every index the engine keeps on it): the message
  explorer pages through it by user, flow, channel and status;
* flow runs (``flow_runs``, default 1,000,000, 5 % still active): the funnel counts the active ones per step;
* segment memberships (``segment_members``, default 250,000): the segments page counts them now;
* the rollups (``kpi_daily``, ``kpi_reasons``, ``kpi_open_hours``, ``kpi_current``, ``segment_size_history``) for
  365 days of every default flow and step, three variants, both kinds: more rows than a year of that ledger would make.

Not seeded, because no page or ``/v1/kpis`` reads them: the 10,000,000 events, the 1,000,000 profiles and
``kpi_messages`` and ``message_events`` (read only by the pipeline's rollups). The rollups are seeded directly rather
than built by replaying the ledger through the engine (that path is covered by the contract tests, which check it
against a from-scratch recomputation).

Then ``growth serve`` runs on that file (manual clock, so "today" is the seeded last day) and each page is fetched
over HTTP on 127.0.0.1 after signing in, ``--repeat`` times after two warm-ups; latency is ``time.perf_counter``
around each request (the engine itself never reads the wall clock).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from growthengine.analytics.definitions import KpiConfig
from growthengine.clock import to_us
from growthengine.config.loader import load_config
from growthengine.flows.model import Send, iter_steps
from growthengine.storage.analytics_schema import KPI_COUNTERS, REVENUE_SUMS
from growthengine.storage.kpi_reads import CONFIG_KEY
from growthengine.storage.unit_of_work import Store

TARGET_MS = 300.0
NOW = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
DAYS = 365
VARIANTS = ("", "a", "b")
STATUSES = (("sent", 40), ("delivered", 15), ("opened", 12), ("clicked", 4), ("suppressed", 20), ("failed", 1),
            ("scheduled", 3), ("cancelled", 5))
REASONS = ("consent", "frequency_cap", "quiet_hours", "holdout", "no_address", "expired")

Advance = Callable[[int], None]
Stage = Callable[[str, int], Advance]


@dataclass
class Size:
    messages: int = 2_000_000
    runs: int = 1_000_000
    members: int = 250_000
    users: int = 1_000_000
    repeat: int = 20
    seed: int = 7


@dataclass
class PageTiming:
    path: str
    samples_ms: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def ok(self) -> bool:
        return self.p95 < TARGET_MS


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


def _send_steps() -> list[tuple[str, str, str]]:
    config = load_config(None)
    return [(key, step.name, step.body.channel) for key, flow in config.flows.items()
            for step in iter_steps(flow.steps) if isinstance(step.body, Send)]


def seed(store: Store, size: Size, stage: Stage) -> None:
    """Fill the tables the pages read (see the module's docstring)."""
    rng = random.Random(size.seed)
    steps = _send_steps()
    now_us = to_us(NOW)
    day_us = 86_400_000_000
    statuses = [s for s, w in STATUSES for _ in range(w)]
    with store.transaction() as tx:
        tx.state.put(CONFIG_KEY, KpiConfig().as_dict())
    insert_messages = (
        "INSERT INTO messages (id, run_id, user_id, flow_key, step, channel, kind, status, reason, priority, "
        "scheduled_us, sent_us, expires_us, updated_us, title, subject, body, html, image_url, variant, coupon, data) "
        "VALUES (?, ?, ?, ?, ?, ?, 'marketing', ?, ?, 50, ?, ?, NULL, ?, ?, NULL, ?, NULL, NULL, ?, NULL, ?)")
    advance = stage("messages", size.messages)
    for start in range(0, size.messages, 50_000):
        rows: list[tuple[object, ...]] = []
        for i in range(start, min(start + 50_000, size.messages)):
            flow, step, channel = rng.choice(steps)
            status = rng.choice(statuses)
            at = now_us - rng.randrange(DAYS * day_us)
            reason = rng.choice(REASONS) if status in ("suppressed", "scheduled") else None
            data = orjson.dumps({"gate": f"held by {reason}"} if reason else {}).decode()
            sent = at if status in ("sent", "delivered", "opened", "clicked") else None
            rows.append((f"msg_{i:024x}", i, f"u{rng.randrange(size.users)}", flow, step, channel, status, reason,
                         at, sent, at, "ลืมของไว้หรือเปล่า? 😲", "กล้องฟิล์ม รอคุณอยู่!", rng.choice(VARIANTS) or None,
                         data))
        _bulk(store, insert_messages, rows)
        advance(len(rows))
    advance = stage("runs", size.runs)
    insert_runs = ("INSERT INTO flow_runs (flow_key, version, user_id, entity, status, cursor, trigger_us, entered_us,"
                   " updated_us, context, exit_reason) VALUES (?, 'v1', ?, ?, ?, ?, ?, ?, ?, '{}', NULL)")
    for start in range(0, size.runs, 50_000):
        rows = []
        for i in range(start, min(start + 50_000, size.runs)):
            flow = steps[i % len(steps)][0]
            active = rng.random() < 0.05
            at = now_us - rng.randrange(DAYS * day_us)
            rows.append((flow, f"u{i % size.users}", f"e{i}", "active" if active else "completed",
                         str(rng.randrange(3)) if active else "", at, at, at))
        _bulk(store, insert_runs, rows)
        advance(len(rows))
    advance = stage("members", size.members)
    segments = list(load_config(None).segments)
    rows = [(segments[i % len(segments)], f"u{i * 3 % size.users}", "", now_us, "{}", "bench")
            for i in range(size.members)]
    _bulk(store, "INSERT OR IGNORE INTO segment_members (segment_key, user_id, entity, since_us, data, reason) "
                 "VALUES (?, ?, ?, ?, ?, ?)", rows)
    advance(size.members)
    _seed_rollups(store, rng, steps, segments, stage)


def _seed_rollups(store: Store, rng: random.Random, steps: list[tuple[str, str, str]], segments: list[str],
                  stage: Stage) -> None:
    today = NOW.date()
    days = [(today - dt.timedelta(days=d)).isoformat() for d in range(DAYS)]
    advance = stage("rollups", len(days))
    counters = (*KPI_COUNTERS, *REVENUE_SUMS)
    columns = ", ".join(counters)
    marks = ", ".join("?" * len(counters))
    daily_sql = f"INSERT INTO kpi_daily (day, flow_key, step, channel, variant, kind, {columns}) " \
                f"VALUES (?, ?, ?, ?, ?, ?, {marks})"  # noqa: S608 (constant column names)
    for day in days:
        daily, reasons = [], []
        for flow, step, channel in steps:
            for variant in VARIANTS:
                for kind in ("marketing", "transactional"):
                    sent = rng.randrange(1000, 5000)
                    opened = sent * rng.randrange(3, 30) // 100
                    control = sent // 10 if kind == "marketing" else 0
                    daily.append((day, flow, step, channel, variant, kind, sent + 300, 5, sent, sent, opened,
                                  opened // 5, sent // 200, 250, 40, control, sent // 50, control // 70, sent // 400,
                                  sent // 45, sent * 30.0, sent * 90_000.0, control * 20.0, control * 60_000.0))
            for reason in REASONS:
                reasons.append((day, flow, step, channel, "suppressed", reason, rng.randrange(10, 500)))
        _bulk(store, daily_sql, daily)
        _bulk(store, "INSERT INTO kpi_reasons (day, flow_key, step, channel, status, reason, n) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", reasons)
        _bulk(store, "INSERT INTO segment_size_history (day, segment_key, size, taken_us) VALUES (?, ?, ?, 0)",
              [(day, s, rng.randrange(10_000, 90_000)) for s in segments])
        advance(1)
    sums = ", ".join(f"SUM({c})" for c in counters)
    push_email = ", ".join(f"SUM(CASE WHEN channel = '{ch}' THEN {c} ELSE 0 END)"
                           for ch in ("push", "email") for c in ("sent", "opened"))
    with store.engine.begin() as conn:  # the month and per-flow-day rollups, as the engine keeps them
        conn.exec_driver_sql(
            f"INSERT INTO kpi_monthly (month, flow_key, step, channel, variant, kind, {columns}) "  # noqa: S608
            f"SELECT substr(day, 1, 7), flow_key, step, channel, variant, kind, {sums} FROM kpi_daily "
            "GROUP BY 1, 2, 3, 4, 5, 6")
        conn.exec_driver_sql(
            f"INSERT INTO kpi_flow_days (day, flow_key, {columns}, push_sent, push_opened, email_sent, "  # noqa: S608
            f"email_opened) SELECT day, flow_key, {sums}, {push_email} FROM kpi_daily GROUP BY 1, 2")
        conn.exec_driver_sql(
            "INSERT INTO kpi_reasons_monthly (month, flow_key, step, channel, status, reason, n) "
            "SELECT substr(day, 1, 7), flow_key, step, channel, status, reason, SUM(n) FROM kpi_reasons "
            "GROUP BY 1, 2, 3, 4, 5, 6")
    now_rows = [(flow, step, channel, status, reason, rng.randrange(0, 3000)) for flow, step, channel in steps
                for status in ("scheduled", "suppressed") for reason in REASONS]
    _bulk(store, "INSERT INTO kpi_current (flow_key, step, channel, status, reason, n) VALUES (?, ?, ?, ?, ?, ?)",
          now_rows)
    hours = [(flow, channel, how, rng.randrange(0, 5000)) for flow, _step, channel in steps for how in range(168)]
    _bulk(store, "INSERT OR IGNORE INTO kpi_open_hours (flow_key, channel, how, n) VALUES (?, ?, ?, ?)", hours)


def _bulk(store: Store, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
    with store.engine.begin() as conn:
        conn.exec_driver_sql(sql, rows)


PAGES = ("/", "/dashboard/segments", "/dashboard/flows", "/dashboard/messages",
         "/dashboard/messages?status=failed", "/dashboard/messages?user=u4242", "/dashboard/messages?channel=sms",
         "/dashboard/experiments", "/dashboard/send-times", "/?from=2025-04-01&to=2026-03-31",
         "/v1/kpis", "/v1/kpis?flow=cart_abandonment", "/v1/kpis?from=2025-04-01&to=2026-03-31")


def measure(db_file: Path, repeat: int, progress: Advance) -> list[PageTiming]:
    """Start ``growth serve`` on the seeded file, sign in, time every page."""
    from growthengine.bench.ingest import _free_port

    port = _free_port()
    key = "ge_bench_dashboard_key"
    env = {**os.environ, "GROWTH_API_KEY": key, "GROWTH_DATA_DIR": str(db_file.parent / "data"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("GROWTH_DB_URL", None)
    log_path = db_file.with_suffix(".log")
    cmd = [sys.executable, "-m", "growthengine.cli", "serve", "--db", f"sqlite:///{db_file}", "--host",
           "127.0.0.1", "--port", str(port), "--clock", "manual", "--start", NOW.isoformat()]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=db_file.parent, env=env, stdout=log,  # noqa: S603 (our own program)
                                stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            _wait(http, proc, log_path)
            login = http.post("/dashboard/login", data={"key": key, "next": "/"})
            if login.status_code != 303 or "growth_session" not in http.cookies:
                raise BenchError(f"could not sign in: {login.status_code}")
            timings = []
            for path in PAGES:
                headers = {"Authorization": f"Bearer {key}"} if path.startswith("/v1") else {}
                timing = PageTiming(path)
                for n in range(repeat + 2):
                    began = time.perf_counter()
                    response = http.get(path, headers=headers)
                    elapsed = (time.perf_counter() - began) * 1000
                    if response.status_code != 200:
                        raise BenchError(f"{path} answered {response.status_code}: {response.text[:200]}")
                    if n >= 2:
                        timing.samples_ms.append(elapsed)
                timings.append(timing)
                progress(1)
            return timings
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait(http: httpx.Client, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 600) -> None:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"growth serve exited: {log_path.read_text(errors='replace')[-500:]}")
        try:
            if http.get("/openapi.json").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise BenchError("growth serve did not answer in time")


def run_dashboard_bench(work_dir: Path, size: Size, stage: Stage) -> list[PageTiming]:
    db_file = work_dir / "dashboard.db"
    if db_file.exists():
        raise BenchError(f"{db_file} exists already; give an empty --db-dir")
    store = Store.open(f"sqlite:///{db_file}")
    try:
        seed(store, size, stage)
    finally:
        store.close()
    return measure(db_file, size.repeat, stage("pages", len(PAGES)))

"""Live mode: a simulated marketplace posting to a running engine's ``POST /v1/batch`` (``growth serve --simulate``).

Before going live, a fresh engine gets a backfilled history (with timestamps, ending at the engine's now, read from
``GET /v1/clock``) so that segments such as churn risk have something to find. Then, by the engine's clock:

- on the manual clock (``make run``'s demo), the simulator drives it (:mod:`growthengine.simulate.clock_driver`):
  events carry their simulated times and the clock follows them, a fresh engine's last days replayed at full speed,
  then a simulated day a minute;
- on the real clock, the users live on a compressed day (by default a simulated day passes in six real minutes)
  while the engine's business time is real: live events carry no timestamp, the engine stamps them with its now.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from growthengine.clock import from_us, to_us
from growthengine.simulate.clock_driver import DEMO_DAY_SECONDS, DriveStats, Pace, drive_clock
from growthengine.simulate.feedback import ApiMessageSource, MessageSource, respond
from growthengine.simulate.marketplace import DAY_US, HOUR_US, Marketplace, SimEvent, to_call
from growthengine.simulate.population import user_id
from growthengine.timefmt import TimeFormatError, format_instant, parse_instant

log = logging.getLogger(__name__)

MAX_BATCH = 1000
REAL_CLOCK_DAY_SECONDS = 360.0
ADVANCE_TIMEOUT_S = 300.0
"""One clock advance does all the work falling due on the way; on a loaded machine that can take a while."""


class LiveSimulationError(RuntimeError):
    """The running engine cannot be reached or refuses the simulator."""


@dataclass
class LiveStats:
    history_events: int = 0
    live_events: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0


class _Poster:
    def __init__(self, client: httpx.Client, stats: LiveStats, prefix: str) -> None:
        self.client, self.stats, self.prefix = client, stats, prefix
        self._logged_rejection = False

    def post(self, events: list[SimEvent], *, timestamps: bool) -> None:
        for i in range(0, len(events), MAX_BATCH):
            chunk = [to_call(e, prefix=self.prefix, timestamp=timestamps) for e in events[i : i + MAX_BATCH]]
            try:
                response = self.client.post("/v1/batch", json={"batch": chunk})
            except httpx.TransportError as exc:
                log.warning("simulator: POST /v1/batch failed (%s); %d events dropped", exc, len(chunk))
                continue
            if response.status_code in (401, 403):
                raise LiveSimulationError(f"the engine refused the simulator's API key ({response.status_code})")
            if response.status_code != 200:
                log.warning("simulator: POST /v1/batch answered %d: %s", response.status_code, response.text[:200])
                continue
            body = response.json()
            self.stats.batches += 1
            self.stats.accepted += int(body.get("accepted", 0))
            self.stats.duplicates += int(body.get("duplicates", 0))
            rejected = body.get("rejected") or []
            self.stats.rejected += len(rejected)
            if rejected and not self._logged_rejection:
                log.warning("simulator: the engine rejected a call: %s", rejected[0].get("error"))
                self._logged_rejection = True


def _engine_clock(client: httpx.Client, stop: threading.Event, ready_timeout: float) -> tuple[int, str]:
    """Wait until the engine answers, then read its clock: its now and its mode."""
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            response = client.get("/v1/clock")
        except httpx.TransportError:
            response = None
        if response is not None:
            if response.status_code in (401, 403):
                raise LiveSimulationError(f"the engine refused the simulator's API key ({response.status_code})")
            if response.status_code == 200:
                try:
                    body = response.json()
                    return to_us(parse_instant(body.get("now"), field="now")), str(body.get("mode"))
                except (TimeFormatError, ValueError, AttributeError) as exc:
                    raise LiveSimulationError(f"GET /v1/clock gave no usable time: {exc}") from None
        if time.monotonic() > deadline or stop.wait(0.2):
            raise LiveSimulationError(f"the engine did not answer at {client.base_url} within {ready_timeout:g} s")


def stream_live(
    base_url: str,
    api_key: str,
    *,
    users: int = 300,
    seed: int = 7,
    history_days: float = 56.0,
    day_seconds: float | None = None,
    replay_days: float = 0.0,
    stop: threading.Event | None = None,
    max_live_events: int | None = None,
    messages: MessageSource | None = None,
    poll_seconds: float = 5.0,
    ready_timeout: float = 120.0,
    transport: httpx.BaseTransport | None = None,
) -> LiveStats:
    """Post a live marketplace to the engine at ``base_url`` until ``stop`` is set (or ``max_live_events`` went).

    ``day_seconds`` is the real length of a simulated day (default: a minute when the simulator drives the engine's
    manual clock, six minutes on the real clock); ``replay_days`` (manual clock, fresh engine only) are simulated
    at full speed first."""
    stop = stop or threading.Event()
    stats = LiveStats()
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0, transport=transport) as client:
        now_us, mode = _engine_clock(client, stop, ready_timeout)
        fresh = client.get(f"/v1/users/{user_id(0)}").status_code == 404
        history_us = int(history_days * DAY_US) if fresh else 0
        market = Marketplace(users, seed, from_us(now_us - history_us))
        poster = _Poster(client, stats, prefix=f"live{seed}-{now_us}")
        market.open(identify=fresh)
        hour_us = market.start_us
        if history_us:
            log.info("simulator: backfilling %g days of history for %d users", history_days, users)
            while hour_us < now_us and not stop.is_set():
                market.plan_hour(hour_us)
                hour_us += HOUR_US
                batch = market.drain(min(hour_us, now_us))
                stats.history_events += len(batch)
                poster.post(batch, timestamps=True)
            log.info("simulator: %d history events posted; now live", stats.history_events)
        source = messages if messages is not None else ApiMessageSource(client)
        if mode == "manual":
            pace = Pace(day_seconds=day_seconds or DEMO_DAY_SECONDS,
                        replay_us=int(replay_days * DAY_US) if fresh else 0)
            drive = DriveStats()
            try:
                drive_clock(market, lambda batch: poster.post(batch, timestamps=True), _Advancer(client), source,
                            stop, start_us=now_us, next_hour_us=hour_us, pace=pace, max_events=max_live_events,
                            stats=drive)
            finally:
                stats.live_events = drive.live_events
        else:
            _run_live(market, poster, source, stats, stop, now_us=now_us, next_hour_us=hour_us,
                      speed=DAY_US / ((day_seconds or REAL_CLOCK_DAY_SECONDS) * 1_000_000),
                      max_events=max_live_events, poll_seconds=poll_seconds)
    return stats


class _Advancer:
    """Moves the engine's manual clock through ``POST /v1/clock/advance``; answers where the clock stands."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self._warned = False

    def __call__(self, to: int) -> int:
        try:
            response = self.client.post("/v1/clock/advance", json={"to": format_instant(from_us(to))},
                                        timeout=ADVANCE_TIMEOUT_S)
        except httpx.TransportError as exc:
            raise LiveSimulationError(f"POST /v1/clock/advance failed: {exc}") from None
        if response.status_code in (401, 403):
            raise LiveSimulationError(f"the engine refused the simulator's API key ({response.status_code})")
        if response.status_code == 409:
            # The clock went further meanwhile (someone advanced it by hand): go on from where it stands.
            if not self._warned:
                log.warning("simulator: POST /v1/clock/advance answered 409: %s", response.text[:200])
                self._warned = True
            current = self.client.get("/v1/clock")
            if current.status_code == 200:
                try:
                    return max(to, to_us(parse_instant(current.json().get("now"), field="now")))
                except (TimeFormatError, ValueError, AttributeError):
                    pass
            return to
        if response.status_code != 200:
            raise LiveSimulationError(
                f"POST /v1/clock/advance answered {response.status_code}: {response.text[:200]}")
        try:
            return to_us(parse_instant(response.json().get("now"), field="now"))
        except (TimeFormatError, ValueError, AttributeError) as exc:
            raise LiveSimulationError(f"POST /v1/clock/advance gave no usable time: {exc}") from None


def _run_live(market: Marketplace, poster: _Poster, source: MessageSource, stats: LiveStats,
              stop: threading.Event, *, now_us: int, next_hour_us: int, speed: float, max_events: int | None,
              poll_seconds: float) -> None:
    """Simulated time runs ``speed`` times faster than the real clock from ``now_us``; events go out as it passes."""
    began = time.monotonic()  # pacing only; the engine stamps the events with its own clock
    last_poll = began
    last_log = began
    while not stop.is_set():
        real = time.monotonic()
        virtual_us = now_us + int((real - began) * 1_000_000 * speed)
        while next_hour_us <= virtual_us:
            market.plan_hour(next_hour_us)
            next_hour_us += HOUR_US
        batch = market.drain(virtual_us + 1)
        if max_events is not None:
            batch = batch[: max(0, max_events - stats.live_events)]
        if batch:
            stats.live_events += len(batch)
            poster.post(batch, timestamps=False)
        if max_events is not None and stats.live_events >= max_events:
            return
        if real - last_poll >= poll_seconds:
            last_poll = real
            sent = source.new_messages()
            if sent:
                respond(market, sent, virtual_us, at_sent_time=False)
        if real - last_log >= 60.0:
            last_log = real
            log.info("simulator: %d live events posted (%d accepted), simulated %s", stats.live_events,
                     stats.accepted, from_us(virtual_us).isoformat(timespec="minutes"))
        stop.wait(0.25)


THREAD_NAME = "growth-simulator"


class _NotFromSimulator(logging.Filter):
    """Keeps httpx's line-per-request log for the engine's own calls, not for the simulator's thousands of posts."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD_NAME


def start_in_background(base_url: str, api_key: str, **options: Any) -> tuple[threading.Thread, threading.Event]:
    """Run :func:`stream_live` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _NotFromSimulator) for f in httpx_log.filters):
        httpx_log.addFilter(_NotFromSimulator())

    def run() -> None:
        try:
            stats = stream_live(base_url, api_key, stop=stop, **options)
            log.info("simulator stopped: %d history and %d live events posted", stats.history_events,
                     stats.live_events)
        except LiveSimulationError as exc:
            log.error("simulator: %s", exc)
        except Exception:
            log.exception("simulator failed")

    thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    thread.start()
    return thread, stop

"""Live mode: the simulated marketplace posting to a real ``growth serve`` on 127.0.0.1 (``make run``)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from growthengine.simulate.feedback import NoMessages
from growthengine.simulate.live import stream_live
from growthengine.timefmt import parse_instant
from tests.e2e.serve import KEY_IN_OUTPUT, clean_env, serving
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

KEY = "e2e-sim-admin-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def test_stream_live_backfills_history_then_streams_without_timestamps(tmp_path: Path) -> None:
    with serving(tmp_path, [], clean_env(api_key=KEY)) as server:
        stop = threading.Event()
        timer = threading.Timer(60.0, stop.set)  # a bound, whatever happens
        timer.start()
        try:
            stats = stream_live(server.base_url, KEY, users=40, history_days=3, day_seconds=10.0, stop=stop,
                                max_live_events=40, messages=NoMessages(), ready_timeout=10.0)
        finally:
            timer.cancel()
        assert stats.history_events > 100
        assert stats.live_events == 40
        assert stats.rejected == 0 and stats.accepted == stats.history_events + stats.live_events
        user = httpx.get(f"{server.base_url}/v1/users/u000001", headers=AUTH, timeout=5).json()
        assert user["traits"]["email"] == "user1@example.test"
        # A second run finds the users there and streams without a second history.
        again = stream_live(server.base_url, KEY, users=40, history_days=3, day_seconds=10.0,
                            max_live_events=5, messages=NoMessages(), ready_timeout=10.0)
        assert again.history_events == 0 and again.live_events == 5 and again.rejected == 0


def _event_count(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def _dashboard_data(db: Path) -> tuple[int, int]:
    """What the dashboard's charts draw from: days of segment-size snapshots, and distinct local hours of the week
    with opens (the send-time heatmap)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        days = int(conn.execute("SELECT count(DISTINCT day) FROM segment_size_history").fetchone()[0])
        hours = int(conn.execute("SELECT count(DISTINCT how) FROM kpi_open_hours WHERE n > 0").fetchone()[0])
    return days, hours


DEFAULT_SEGMENTS = ("churn_risk", "high_ltv", "window_shoppers", "local_buyers", "cart_abandoners")
MAKE_RUN_DEADLINE_S = 1200.0
"""A bound on failure only, never on speed: on an idle machine the conditions hold within about three minutes (the
history, then the replayed days); a loaded 2-core CI machine may take several times that."""


@pytest.mark.timeout(MAKE_RUN_DEADLINE_S + 300)
def test_make_run_fills_segments_and_fires_flows_then_a_second_run_streams_on_a_key_of_its_own(
        tmp_path: Path) -> None:
    """``make run`` from a fresh clone (no ``GROWTH_API_KEY``): the simulated marketplace drives the engine's manual
    clock (weeks of history, replayed days at full speed, then a simulated day a minute), so every default segment
    fills, the cart flow fires from fresh entries (a cart abandoned after its hour of simulated time), and the
    dashboard has days of segment sizes and opens spread over the hours of the week. A second run keeps only the
    hash of the admin key, so its simulator gets an in-memory key of its own, and goes on from where the simulated
    clock stopped."""
    env = clean_env()
    db = tmp_path / "data" / "growth.db"
    with serving(tmp_path, ["--simulate"], env, name="first") as server:
        assert "Simulated marketplace streaming" in server.output()
        [key] = KEY_IN_OUTPUT.findall(server.output())
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=120) as http:
            clock = http.get("/v1/clock").json()
            assert clock["mode"] == "manual"  # business time is the simulator's; system time stays real
            began = parse_instant(clock["now"])

            def filled_and_fired() -> dict[str, object] | None:
                sizes = {s["key"]: s["size"] for s in http.get("/v1/segments").json()}
                if any(sizes[key] == 0 for key in DEFAULT_SEGMENTS):
                    return None
                carts = http.get("/v1/messages", params={"flow": "cart_abandonment", "limit": 1}).json()
                if not carts["messages"]:
                    return None
                now = parse_instant(http.get("/v1/clock").json()["now"])
                days, hours = _dashboard_data(db)
                if now - began < dt.timedelta(days=3) or days < 3 or hours < 24:
                    return None
                return {"sizes": sizes, "cart": carts["messages"][0], "now": now, "days": days, "hours": hours}

            seen = wait_until(filled_and_fired, timeout_s=MAKE_RUN_DEADLINE_S, poll_s=2.0,
                              what="every default segment filling, the cart flow firing and days going by")
            cart = seen["cart"]
            assert isinstance(cart, dict) and cart["flow"] == "cart_abandonment" and cart["userId"].startswith("u")
    before = _event_count(db)
    with serving(tmp_path, ["--simulate"], env, name="second") as server:
        assert KEY_IN_OUTPUT.search(server.output()) is None, "the admin key is printed once, on the first run"
        resumed = parse_instant(httpx.get(f"{server.base_url}/v1/clock", headers=auth, timeout=30).json()["now"])
        assert resumed >= seen["now"]  # type: ignore[operator]  # the simulated clock never goes back
        wait_until(lambda: _event_count(db) > before, timeout_s=120, poll_s=0.5,
                   what="the second run's simulator posting")
        assert "refused" not in server.output()
        assert httpx.get(f"{server.base_url}/v1/clock", headers=auth, timeout=30).status_code == 200

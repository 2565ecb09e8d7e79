"""Live mode: the simulated marketplace posting to a real ``growth serve`` on 127.0.0.1 (``make run``)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from growthengine.simulate.feedback import NoMessages
from growthengine.simulate.live import stream_live
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


def test_make_run_fills_segments_and_fires_flows_then_a_second_run_streams_on_a_key_of_its_own(
        tmp_path: Path) -> None:
    """``make run`` from a fresh clone (no ``GROWTH_API_KEY``): the history and the fast demo day fill segments
    and fire flows within a bounded time. A second run keeps only the hash of the admin key, so its simulator
    gets an in-memory key of its own, and streams on."""
    env = clean_env()
    with serving(tmp_path, ["--simulate"], env, name="first") as server:
        assert "Simulated marketplace streaming" in server.output()
        [key] = KEY_IN_OUTPUT.findall(server.output())
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as http:

            def filled_and_fired() -> dict[str, int] | None:
                sizes = {s["key"]: s["size"] for s in http.get("/v1/segments").json()}
                carts = http.get("/v1/messages", params={"flow": "cart_abandonment", "limit": 1}).json()
                # Both fill from the back-filled history and the demo day; the cart flow fires on fresh entries.
                return sizes if sizes["high_ltv"] > 0 and sizes["cart_abandoners"] > 0 and carts["messages"] else None

            wait_until(filled_and_fired, timeout_s=180, what="segments filling and the cart flow firing")
    db = tmp_path / "data" / "growth.db"
    before = _event_count(db)
    with serving(tmp_path, ["--simulate"], env, name="second") as server:
        assert KEY_IN_OUTPUT.search(server.output()) is None, "the admin key is printed once, on the first run"
        wait_until(lambda: _event_count(db) > before, timeout_s=60, what="the second run's simulator posting")
        assert "refused" not in server.output()
        assert httpx.get(f"{server.base_url}/v1/clock", headers=auth, timeout=10).status_code == 200

"""Live mode: the simulated marketplace posting to a real ``growth serve`` on 127.0.0.1 (``make run``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from growthengine.simulate.feedback import NoMessages
from growthengine.simulate.live import stream_live
from tests.e2e.serve import clean_env, serving

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


def test_serve_simulate_streams_a_marketplace_in(tmp_path: Path) -> None:
    with serving(tmp_path, ["--simulate"], clean_env(api_key=KEY), name="simulate") as server:
        deadline = time.monotonic() + 30
        status = 0
        while time.monotonic() < deadline:
            status = httpx.get(f"{server.base_url}/v1/users/u000001", headers=AUTH, timeout=5).status_code
            if status == 200:
                break
            time.sleep(0.3)
        assert status == 200, server.output()
        assert "Simulated marketplace streaming" in server.output()

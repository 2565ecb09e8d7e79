"""The segment stage keeps users' state in memory and writes it once per batch, in the batch's transaction: kill the
worker with SIGKILL again and again while purchases stream in, and every user's stored state still counts each
purchase in the log exactly once (the stored state is what the cursor says), with the memberships to match."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.serve import clean_env, serving
from tests.e2e.test_crash_safety_stages import _caught_up, _children

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer crash-admin"}
USERS = 120
ROUNDS = 14


def _purchases(round_no: int, rng: random.Random, spent: dict[str, int]) -> list[dict[str, object]]:
    calls: list[dict[str, object]] = []
    for u in range(USERS):
        amount = rng.randint(100, 900)
        spent[f"buyer{u}"] = spent.get(f"buyer{u}", 0) + amount
        calls.append({"type": "track", "userId": f"buyer{u}", "event": "purchase", "messageId": f"p-{round_no}-{u}",
                      "properties": {"order_id": f"o-{round_no}-{u}", "amount": amount, "listing_ids": ["L1"]}})
    return calls


def test_sigkill_while_state_is_held_in_memory_leaves_the_stored_state_as_the_log_says(tmp_path: Path) -> None:
    rng = random.Random(5)
    db = tmp_path / "growth.db"
    killed: set[int] = set()
    spent: dict[str, int] = {}
    with serving(tmp_path, ["--db", f"sqlite:///{db}"], clean_env(api_key="crash-admin")) as server:
        for round_no in range(ROUNDS):
            answer = httpx.post(f"{server.base_url}/v1/batch", json={"batch": _purchases(round_no, rng, spent)},
                                headers=ADMIN, timeout=60)
            assert answer.status_code == 200, answer.text
            if round_no % 2 == 1:
                # The restarted worker (not the one killed before, which may linger until it is reaped) is up.
                until = time.monotonic() + 120
                while not (fresh := [c for c in _children(server.proc.pid) if c not in killed]):
                    assert time.monotonic() < until, "the worker was not restarted within 2 minutes"
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.05, 0.5))  # and at work on what came in
                for child in fresh:
                    os.kill(child, signal.SIGKILL)
                    killed.add(child)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _caught_up(server.base_url):
            time.sleep(0.2)
        assert _caught_up(server.base_url)
    assert len(killed) >= ROUNDS // 2  # every other round killed the worker
    with sqlite3.connect(db) as conn:
        paid = dict(conn.execute("SELECT user_id, count(*) FROM events WHERE name = 'purchase' GROUP BY user_id"))
        states = {u: orjson.loads(s) for u, s in conn.execute("SELECT user_id, state FROM segment_state")}
        members = {u for (u,) in conn.execute("SELECT user_id FROM segment_members WHERE segment_key = 'high_ltv'")}
        entries = dict(conn.execute("SELECT user_id, count(*) FROM segment_transitions "
                                    "WHERE segment_key = 'high_ltv' AND kind = 'enter' GROUP BY user_id"))
    assert len(paid) == USERS and all(n == ROUNDS for n in paid.values())
    for user, count in paid.items():
        lifetime = [agg[""] for agg in states[user]["f"].values() if isinstance(agg, dict) and "" in agg
                    and agg[""]["n"]]
        assert len(lifetime) == 1, states[user]
        assert lifetime[0]["n"] == count, f"{user}: every purchase counted once"
        assert lifetime[0]["s"] == spent[user]
    assert members == {u for u, s in spent.items() if s > 5000}
    assert all(n == 1 for n in entries.values()) and set(entries) == members

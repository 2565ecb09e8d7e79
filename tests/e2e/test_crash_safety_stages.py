"""Kill the worker process with SIGKILL again and again while it works through the log (segments, flows, the
consent audit, the send ledger): each stage commits its effects with its cursor, so after the restarts every effect
is there exactly once (DESIGN.md principle 4, for the pipeline)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.serve import clean_env, daytime_zone, serving

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer crash-admin"}
FANS = 300
BUYERS = 200



def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def _calls() -> list[dict[str, object]]:
    traits = {"push_token": "tok", "timezone": daytime_zone(), "consent": {"push": True}}
    calls: list[dict[str, object]] = [
        {"type": "track", "userId": "seller", "event": "listing_created", "messageId": "listing",
         "properties": {"listing_id": "L1", "title": "Fuji", "price": 10000, "category": "cameras"}}]
    for n in range(FANS):
        calls.append({"type": "identify", "userId": f"fan{n}", "traits": traits, "messageId": f"fan-id-{n}"})
        calls.append({"type": "track", "userId": f"fan{n}", "event": "favorite_added", "messageId": f"fav-{n}",
                      "properties": {"listing_id": "L1"}})
    for n in range(BUYERS):
        for k in range(2):
            calls.append({"type": "track", "userId": f"buyer{n}", "event": "purchase", "messageId": f"buy-{n}-{k}",
                          "properties": {"order_id": f"o{n}-{k}", "amount": 3000, "listing_ids": ["L9"]}})
    calls.append({"type": "track", "userId": "seller", "event": "listing_price_changed", "messageId": "drop",
                  "properties": {"listing_id": "L1", "old_price": 10000, "new_price": 7000}})
    return calls


def _caught_up(base_url: str) -> bool:
    answer = httpx.get(f"{base_url}/v1/pipeline", headers=ADMIN, timeout=30).json()
    return all(s["behind"] == 0 for s in answer["stages"])


def test_sigkill_of_the_worker_in_every_stage_loses_nothing_and_repeats_nothing(tmp_path: Path) -> None:
    rng = random.Random(11)
    db = tmp_path / "growth.db"
    args = ["--db", f"sqlite:///{db}"]
    kills = 0
    killed: set[int] = set()
    with serving(tmp_path, args, clean_env(api_key="crash-admin")) as server:
        calls = _calls()
        for start in range(0, len(calls), 50):
            answer = httpx.post(f"{server.base_url}/v1/batch", json={"batch": calls[start:start + 50]},
                                headers=ADMIN, timeout=60)
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if kills < 6:
                time.sleep(rng.uniform(0.3, 1.5))
                for child in _children(server.proc.pid):
                    if child not in killed:  # one killed before may linger until it is reaped: not a kill
                        os.kill(child, signal.SIGKILL)
                        killed.add(child)
                kills = len(killed)
                continue
            if _caught_up(server.base_url):
                with sqlite3.connect(db) as conn:
                    done = conn.execute("SELECT count(*) FROM outbox").fetchone()[0] >= FANS
                if done:
                    break
            time.sleep(0.2)
        time.sleep(1.0)
    assert kills >= 6
    with sqlite3.connect(db) as conn:
        pushes = conn.execute("SELECT count(*), count(DISTINCT user_id) FROM messages "
                              "WHERE flow_key = 'price_drop'").fetchone()
        outbox = conn.execute("SELECT count(*), count(DISTINCT message_id) FROM outbox").fetchone()
        entered = conn.execute("SELECT count(*), count(DISTINCT user_id) FROM segment_transitions "
                               "WHERE segment_key = 'high_ltv' AND kind = 'enter'").fetchone()
        members = conn.execute("SELECT count(*) FROM segment_members WHERE segment_key = 'high_ltv'").fetchone()
        consent = conn.execute("SELECT count(*), count(DISTINCT user_id) FROM consent_changes "
                               "WHERE channel = 'push'").fetchone()
    assert tuple(pushes) == (FANS, FANS), "one price-drop push per favoriter"
    assert tuple(outbox) == (FANS, FANS), "each in the outbox once"
    assert tuple(entered) == (BUYERS, BUYERS) and members[0] == BUYERS, "each buyer entered high_ltv once"
    assert tuple(consent) == (FANS, FANS), "each consent recorded once in the audit"
    print(f"{kills} kills of the worker; every effect exactly once")

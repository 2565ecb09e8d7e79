"""Kill the real engine process at random points while flows fire: after a restart nothing is lost and
nothing is sent twice (DESIGN.md principle 4), tested with SIGKILL, not in theory."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.serve import START, ServeProcess, clean_env
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer crash-admin"}
USERS = 1000


def _seed(base_url: str) -> None:
    batch = []
    for n in range(USERS):
        batch.append({"type": "identify", "userId": f"u{n}", "messageId": f"id-{n}",
                      "traits": {"push_token": f"tok{n}", "email": f"u{n}@example.test",
                                 "consent": {"push": True, "email": True, "in_app": True}}})
        batch.append({"type": "track", "userId": f"u{n}", "event": "add_to_cart", "messageId": f"cart-{n}",
                      "properties": {"listing_id": f"L{n}", "title": "กล้อง", "price": 1000, "stock": 1}})
    for start in range(0, len(batch), 1000):
        answer = httpx.post(f"{base_url}/v1/batch", json={"batch": batch[start:start + 1000]}, headers=ADMIN,
                            timeout=120)
        assert answer.status_code == 200, answer.text


def _advance_in_background(base_url: str) -> None:
    def go() -> None:
        try:
            httpx.post(f"{base_url}/v1/clock/advance", json={"by": "PT1H"}, headers=ADMIN, timeout=120)
        except httpx.TransportError:
            pass  # killed mid-request, as intended

    threading.Thread(target=go, daemon=True).start()


def _segment_effects(db: Path) -> tuple[list[tuple[str, str]], int, int]:
    """The cart_abandoners entries (user, listing) stored, the memberships, and the earliest segment timers left (the
    looks at the cart items leaving, 7 days on: one per user, with nothing earlier left over)."""
    with sqlite3.connect(db) as conn:
        entries = conn.execute("SELECT user_id, entity FROM segment_transitions "
                               "WHERE segment_key = 'cart_abandoners' AND kind = 'enter'").fetchall()
        members = conn.execute("SELECT count(*) FROM segment_members WHERE segment_key = 'cart_abandoners'").fetchone()
        earliest = conn.execute("SELECT count(*) FROM timers WHERE kind = 'segment' AND due_us < "
                           "(SELECT min(due_us) FROM timers WHERE kind = 'segment') + 86400000000").fetchone()
    return entries, int(members[0]), int(earliest[0])


def _ledger(db: Path) -> tuple[list[tuple[str, str, str]], int, int]:
    with sqlite3.connect(db) as conn:
        messages = conn.execute(
            "SELECT user_id, step, status FROM messages WHERE flow_key = 'cart_abandonment'").fetchall()
        outbox = conn.execute("SELECT count(*), count(DISTINCT message_id) FROM outbox").fetchone()
    return messages, int(outbox[0]), int(outbox[1])


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_while_timers_fire_loses_nothing_and_repeats_nothing(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    db = tmp_path / "growth.db"
    args = ["--db", f"sqlite:///{db}", "--clock", "manual", "--start", START]
    # Timers fire in chunks, each committed with its effects: a chunk of 100 (the default is thousands) makes the
    # kill land between chunks and inside one, whatever the machine's speed.
    env = clean_env(api_key="crash-admin", timer_chunk="100")
    server = ServeProcess(tmp_path, args, env, name="first")
    try:
        server.wait_ready()
        _seed(server.base_url)
        _advance_in_background(server.base_url)
        # Kill as soon as a random share of the work has committed, while the rest is under way: mid-way, not
        # before or after, measured in work done rather than by a sleep (it lands mid-way as long as one commit
        # holds fewer than half of the users, however fast the machine).
        wanted = rng.randint(1, USERS // 2)
        wait_until(lambda: len(_ledger(db)[0]) >= wanted, timeout_s=120, what=f"{wanted} nudges committing")
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
    finally:
        if server.proc.poll() is None:
            os.killpg(server.proc.pid, signal.SIGKILL)
    before, _, _ = _ledger(db)
    print(f"killed with {len(before)} of {USERS} nudges decided")
    assert 0 < len(before) < USERS, "the kill should land mid-way"
    restarted = ServeProcess(tmp_path, args, env, name="second")
    try:
        restarted.wait_ready()
        answer = httpx.post(f"{restarted.base_url}/v1/clock/advance", json={"by": "PT1H"}, headers=ADMIN,
                            timeout=300)
        assert answer.status_code == 200, answer.text
    finally:
        restarted.stop()
    after, outbox_rows, outbox_ids = _ledger(db)
    pushes = [(u, s) for u, s, _ in after if s == "nudge_push"]
    assert len(pushes) == USERS, f"{len(before)} before the kill, {len(pushes)} after the restart"
    assert len(set(pushes)) == USERS, "a user got the nudge twice"
    assert {status for _, _, status in after} == {"sent"}
    assert outbox_rows == outbox_ids == USERS, "the outbox holds each message exactly once"
    entries, members, next_looks = _segment_effects(db)
    assert sorted(entries) == sorted({(f"u{n}", f"L{n}") for n in range(USERS)}), "each cart entered exactly once"
    assert members == USERS and next_looks == USERS, "one membership and one next look per user"

"""Scale-out on PostgreSQL: one ``growth serve --api-only`` and two ``growth worker`` processes share one database.
One worker is killed with SIGKILL mid-way; the other takes over its partitions. A price drop fans out to thousands
of favoriters: every push is in the ledger and the outbox exactly once, all within 60 s of the price change. Carts
fall due together while their pushes go to an FCM double: every push in the ledger once and at the provider, its
idempotency key (the message id) delivered once, all within 60 s of due."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest

from growthengine.bench.freshness import fcm_double
from tests.e2e.serve import ServeProcess, WorkerProcess, clean_env, daytime_zone
from tests.pg_cluster import PgCluster

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ADMIN = {"Authorization": "Bearer scale-admin"}
FANS = 3000
CARTS = 1500


def _counts(url: str) -> tuple[int, int, int, int]:
    with psycopg.connect(url) as conn:
        messages, distinct_users = conn.execute(
            "SELECT count(*), count(DISTINCT user_id) FROM messages WHERE flow_key = 'price_drop'").fetchone()
        outbox, distinct_outbox = conn.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM outbox").fetchone()
    return int(messages), int(distinct_users), int(outbox), int(distinct_outbox)


def _wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def test_a_worker_killed_mid_fanout_loses_nothing_and_repeats_nothing(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = pg_cluster.new_database()
    env = clean_env(api_key="scale-admin")
    args = ["--db", url]
    api = ServeProcess(tmp_path, [*args, "--api-only"], env, name="api")
    workers = [WorkerProcess(tmp_path, args, env, name=f"worker{i}") for i in range(2)]
    try:
        api.wait_ready()
        zone = daytime_zone()
        traits = {"push_token": "tok", "timezone": zone, "consent": {"push": True}}
        calls: list[dict[str, object]] = [
            {"type": "track", "userId": "seller", "event": "listing_created",
             "properties": {"listing_id": "L1", "title": "Fuji X100V", "price": 30000, "category": "cameras"}}]
        for n in range(FANS):
            calls.append({"type": "identify", "userId": f"fan{n}", "traits": traits})
            calls.append({"type": "track", "userId": f"fan{n}", "event": "favorite_added",
                          "properties": {"listing_id": "L1"}})
        for start in range(0, len(calls), 1000):
            answer = httpx.post(f"{api.base_url}/v1/batch", json={"batch": calls[start:start + 1000]},
                                headers=ADMIN, timeout=60)
            assert answer.status_code == 200 and answer.json()["accepted"] == len(calls[start:start + 1000])
        # Both workers hold a share before the fan-out starts.
        _wait_for(lambda: _lease_owners(url) == 2, 60, "two workers to share the partitions")
        drop = {"userId": "seller", "event": "listing_price_changed",
                "properties": {"listing_id": "L1", "old_price": 30000, "new_price": 24000}}
        answer = httpx.post(f"{api.base_url}/v1/track", json=drop, headers=ADMIN, timeout=60)
        assert answer.status_code == 200
        changed = time.monotonic()
        _wait_for(lambda: _counts(url)[0] >= FANS // 4, 60, "a quarter of the pushes")
        workers[0].kill()
        _wait_for(lambda: _counts(url)[0] >= FANS, 90, "every push")
        finished = time.monotonic() - changed
        time.sleep(1.0)  # anything that would be sent twice would show up now
        messages, users, outbox, distinct_outbox = _counts(url)
        assert (messages, users) == (FANS, FANS), "one push per favoriter in the ledger"
        assert outbox == distinct_outbox == FANS, "and one outbox row each"
        assert finished <= 60, f"all pushes within 60 s of the price change (took {finished:.1f}s)"
        print(f"{FANS} pushes in {finished:.1f}s with a worker killed mid-way")
    finally:
        for w in workers:
            w.stop()
            print(f"--- {w.log_path.name} ---\n{w.output()[-3000:]}")
        api.stop()


def test_workers_started_together_each_take_half_with_no_give_back(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """Two ``growth worker`` processes started at once see each other before either takes a partition, so each
    takes its fair share at once and neither gives any back (which would undo the batch it had begun)."""
    url = pg_cluster.new_database()
    env = clean_env(api_key="scale-admin")
    workers = [WorkerProcess(tmp_path, ["--db", url], env, name=f"joined{i}") for i in range(2)]
    try:
        _wait_for(lambda: _lease_owners(url) == 2, 60, "two workers to share the partitions")
        time.sleep(1.5)  # three heartbeats: a give-back, if any, would be logged by now
        with psycopg.connect(url) as conn:
            shares = sorted(n for (n,) in conn.execute(
                "SELECT count(*) FROM partition_leases WHERE owner IS NOT NULL GROUP BY owner"))
        assert shares == [32, 32]
        for w in workers:
            assert "took 32 partition(s)" in w.output() and "gave back" not in w.output(), w.output()[-2000:]
    finally:
        for w in workers:
            w.stop()


def _lease_owners(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(DISTINCT owner) FROM partition_leases WHERE owner IS NOT NULL").fetchone()
    return int(row[0]) if row else 0


def _cart_pushes(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, user_id, status FROM messages WHERE flow_key = 'cart_abandonment' "
                            "AND channel = 'push'").fetchall()
    return [(str(i), str(u), str(st)) for i, u, st in rows]


def _all_recorded_sent(url: str) -> bool:
    pushes = _cart_pushes(url)
    return len(pushes) >= CARTS and all(status == "sent" for _, _, status in pushes)


def test_a_worker_killed_while_due_carts_are_pushed_loses_nothing_and_sends_nothing_twice(
        pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = pg_cluster.new_database()
    env = clean_env(api_key="scale-admin")
    with fcm_double(0.0) as (fcm_url, fcm):
        config = tmp_path / "growth.yaml"
        config.write_text(json.dumps({"settings": {
            "channel_providers": {"push": "fcm"},
            "provider_settings": {"fcm": {"project_id": "e2e", "access_token": "token", "base_url": fcm_url}}}}))
        args = ["--db", url, "--config", str(config)]
        api = ServeProcess(tmp_path, [*args, "--api-only"], env, name="api")
        workers = [WorkerProcess(tmp_path, args, env, name=f"worker{i}") for i in range(2)]
        try:
            api.wait_ready()
            _wait_for(lambda: _lease_owners(url) == 2, 60, "two workers to share the partitions")
            # Each cart was filled 59 min 40 s ago: all fall due (1 hour without a purchase) 20 s from now.
            due = time.time() + 20
            added = dt.datetime.fromtimestamp(due - 3600, dt.UTC).isoformat()
            traits = {"push_token": "tok", "timezone": daytime_zone(), "consent": {"push": True}}
            calls: list[dict[str, object]] = []
            for n in range(CARTS):
                calls.append({"type": "identify", "userId": f"buyer{n}", "traits": traits})
                calls.append({"type": "track", "userId": f"buyer{n}", "event": "add_to_cart", "timestamp": added,
                              "properties": {"listing_id": f"L{n}", "title": "Fuji X100V", "price": 30000,
                                             "stock": 5}})
            for start in range(0, len(calls), 1000):
                answer = httpx.post(f"{api.base_url}/v1/batch", json={"batch": calls[start:start + 1000]},
                                    headers=ADMIN, timeout=60)
                assert answer.status_code == 200 and answer.json()["accepted"] == len(calls[start:start + 1000])
            assert time.time() < due, "the carts were stored before they fell due"
            _wait_for(lambda: fcm.calls >= CARTS // 4, 90, "a quarter of the pushes at the provider")
            workers[0].kill()
            # Every push at the provider, and every one recorded sent: a call the killed worker made is recorded when
            # the worker that takes its partitions makes it again (its claim lapses first), which may come after
            # the provider has seen every id (when that call was the last new one).
            _wait_for(lambda: len({m for m, _ in fcm.received}) >= CARTS and _all_recorded_sent(url), 120,
                      "every push at the provider and recorded sent in the ledger")
            time.sleep(1.0)  # anything that would be sent twice would show up now
            pushes = _cart_pushes(url)
            with fcm.lock:
                calls_made = list(fcm.received)
        finally:
            for w in workers:
                w.stop()
                print(f"--- {w.log_path.name} ---\n{w.output()[-3000:]}")
            api.stop()
    assert len(pushes) == CARTS and len({u for _, u, _ in pushes}) == CARTS, "one push per cart in the ledger"
    assert all(status == "sent" for _, _, status in pushes), Counter(status for _, _, status in pushes)
    per_key = Counter(m for m, _ in calls_made)
    assert set(per_key) == {i for i, _, _ in pushes}, "every push in the ledger reached the provider, no other"
    # A call in flight when its worker died is made again, with the same key (the device folds the two into one
    # notification: the key is the notification's tag and APNs collapse id): at most that one call, and nothing
    # else twice.
    repeated = {m: k for m, k in per_key.items() if k > 1}
    late = max(at for _, at in calls_made) - due
    print(f"repeated keys {repeated}; the last push {late:.1f} s after due")
    assert len(repeated) <= 1 and all(k == 2 for k in repeated.values()), repeated
    assert late <= 60, f"all pushes within 60 s of due (the last {late:.1f} s after)"
    print(f"{CARTS} due carts pushed with a worker killed mid-way; the last {late:.1f} s after due")

"""Scale-out on PostgreSQL: one ``growth serve --api-only`` and two ``growth worker`` processes share one database.
A price drop fans out to thousands of favoriters; one worker is killed with SIGKILL mid-way; the other takes over
its partitions: every push is in the ledger and the outbox exactly once, and all within 60 s of the price change."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.serve import ServeProcess, WorkerProcess, clean_env, daytime_zone
from tests.pg_cluster import PgCluster

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ADMIN = {"Authorization": "Bearer scale-admin"}
FANS = 3000



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


def _lease_owners(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(DISTINCT owner) FROM partition_leases WHERE owner IS NOT NULL").fetchone()
    return int(row[0]) if row else 0

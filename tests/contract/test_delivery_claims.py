"""Claims of pending deliveries (``MessageStore.claim_pending``), on SQLite and PostgreSQL: a claim is the claiming
worker's until its lease runs out, or sooner once that worker has gone silent (no heartbeat for ``silent_s``), so a
worker killed mid-send does not hold its unsent messages for the whole lease; a retry waiting for its backoff and a
live worker's claim are never taken."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
import sqlalchemy as sa

from growthengine.storage.flow_schema import outbox
from growthengine.storage.unit_of_work import Store

LEASE_S = 60.0
SILENT_S = 15.0
NOW_S = 1_000_000.0


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    store = Store.open(db_url)
    try:
        yield store
    finally:
        store.close()


def _pending(store: Store, message_id: str, *, retry_at_s: float | None = None, claimed_by: str | None = None) -> None:
    with store.transaction() as tx:
        tx.conn.execute(sa.insert(outbox).values(
            message_id=message_id, channel="push", provider="fcm", payload=orjson.dumps({"id": message_id}).decode(),
            created_us=0, state="pending", attempts=0, next_us=0, retry_at_s=retry_at_s, claimed_by=claimed_by))


def _heartbeat(store: Store, worker: str, at_s: float) -> None:
    with store.transaction() as tx:
        tx.leases.heartbeat(worker, at_s, "growth worker")


def _claim(store: Store, claimer: str, at_s: float) -> set[str]:
    with store.transaction() as tx:
        rows = tx.messages.claim_pending(10, at_s, limit=100, lease_s=LEASE_S, claimer=claimer, silent_s=SILENT_S)
    return {r["message_id"] for r in rows}


def test_a_silent_workers_claims_are_taken_over_a_live_workers_are_not(store: Store) -> None:
    claimed_at = NOW_S - 20  # 20 s ago: its lease runs until NOW_S + 40
    _pending(store, "dead-worker", retry_at_s=claimed_at + LEASE_S, claimed_by="w-dead")
    _pending(store, "live-worker", retry_at_s=claimed_at + LEASE_S, claimed_by="w-live")
    _pending(store, "mine", retry_at_s=claimed_at + LEASE_S, claimed_by="w-me")
    _pending(store, "backoff", retry_at_s=NOW_S + 30)  # a retry waiting for its backoff, claimed by nobody
    _pending(store, "lease-over", retry_at_s=NOW_S - 1, claimed_by="w-live")
    _pending(store, "fresh", claimed_by=None)
    _heartbeat(store, "w-dead", NOW_S - SILENT_S - 1)
    _heartbeat(store, "w-live", NOW_S - 1)
    _heartbeat(store, "w-me", NOW_S - 1)
    assert _claim(store, "w-me", NOW_S) == {"dead-worker", "lease-over", "fresh"}
    with store.read() as tx:
        owners = dict(tx.conn.execute(sa.select(outbox.c.message_id, outbox.c.claimed_by)).all())
    assert owners["dead-worker"] == owners["fresh"] == "w-me"
    assert owners["live-worker"] == "w-live" and owners["backoff"] is None
    # Now those are w-me's: another worker takes none of them while w-me's heartbeat goes on.
    assert _claim(store, "w-other", NOW_S + 1) == set()


def test_a_claim_younger_than_the_silence_is_kept_even_without_a_heartbeat(store: Store) -> None:
    """A worker that has just started may claim before its first heartbeat: its claims are not taken at once."""
    _pending(store, "just-claimed", retry_at_s=NOW_S - 5 + LEASE_S, claimed_by="w-new")
    assert _claim(store, "w-me", NOW_S) == set()
    assert _claim(store, "w-me", NOW_S - 5 + SILENT_S + 0.5) == {"just-claimed"}


def test_a_settled_retry_belongs_to_nobody(store: Store) -> None:
    _pending(store, "m1")
    assert _claim(store, "w-a", NOW_S) == {"m1"}
    with store.transaction() as tx:
        [row_id] = tx.conn.execute(sa.select(outbox.c.id)).scalars().all()
        tx.messages.settle(row_id, "pending", NOW_S + 2)
    with store.read() as tx:
        assert tx.conn.execute(sa.select(outbox.c.claimed_by)).scalar_one() is None
    assert _claim(store, "w-b", NOW_S + 1) == set(), "the backoff holds, whoever asks"
    assert _claim(store, "w-b", NOW_S + 2) == {"m1"}

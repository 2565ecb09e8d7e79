"""On PostgreSQL a worker keeps its partitions' segment state in memory only while it holds their leases: when the
leases move (lost, taken by another worker, taken back with a new epoch) what it held is dropped, so a worker
that gets its partitions back never writes over what the other worker wrote meanwhile."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest

from growthengine.clock import ManualClock, to_us
from growthengine.domain.partitions import PARTITIONS
from growthengine.engine import Engine
from growthengine.pipeline.ownership import LeasedOwnership
from tests.conftest import START, make_engine
from tests.pg_cluster import PgCluster

pytestmark = pytest.mark.postgres

_n = [0]


def purchase(user: str, amount: int) -> dict[str, Any]:
    _n[0] += 1
    return {"type": "track", "userId": user, "event": "purchase", "messageId": f"own-{_n[0]}",
            "properties": {"order_id": f"O{_n[0]}", "amount": amount, "listing_ids": ["L1"]}}


def spend(engine: Engine, user: str) -> float:
    with engine.store.transaction() as tx:
        state = tx.segments.load_states([user])[user]
    sums = [agg[""]["s"] for agg in state["f"].values() if isinstance(agg, dict) and "" in agg
            and agg[""]["s"]]
    return float(sums[0])


def test_memory_is_dropped_when_the_leases_move(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = pg_cluster.new_database()
    clock = ManualClock(START)
    now = [1_000.0]
    first = make_engine(url, clock, tmp_path / "a")
    second = make_engine(url, clock, tmp_path / "b")
    a = LeasedOwnership(first.store, lambda: now[0], worker_id="a")
    b = LeasedOwnership(second.store, lambda: now[0], worker_id="b")
    try:
        first.use_ownership(a)
        second.use_ownership(b)
        a.refresh()
        assert len(a.partitions()) == PARTITIONS
        first.ingest([purchase("u1", 3000)])
        assert "u1" in first.segments.cache
        # a stalls past its leases; b takes every partition and applies a purchase of u1's.
        now[0] += 20.0
        b.refresh()
        now[0] += 1.0
        b.refresh()
        assert len(b.partitions()) == PARTITIONS and a.partitions() != ()  # a has not noticed yet
        second.ingest([purchase("u1", 1000)])
        assert spend(second, "u1") == 4000
        # b stops; a takes the partitions back with new epochs, and goes on from what b wrote.
        b.release()
        a.refresh()
        assert len(a.partitions()) == PARTITIONS
        clock.set(clock.now() + dt.timedelta(minutes=1))
        first.ingest([purchase("u1", 500)])
        assert spend(first, "u1") == 4500, "a read what b wrote; its memory of 3,000 was dropped"
        with first.store.transaction() as tx:
            assert "high_ltv" not in first.segments.user_segments(tx, "u1")
        first.ingest([purchase("u1", 600)])
        with first.store.transaction() as tx:
            assert "high_ltv" in first.segments.user_segments(tx, "u1")
    finally:
        second.close()
        first.close()


def test_the_fences_of_caches_gone_quiet_are_removed(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """Each worker start leaves its cache's own fence row behind when it ends; the next caches remove the rows
    unwritten for an hour, and keep the live ones and the partitions' fences."""
    url = pg_cluster.new_database()
    clock = ManualClock(START)
    engine = make_engine(url, clock, tmp_path / "a")
    now_us = to_us(clock.now())
    dead = orjson.dumps(f"dead:7:{now_us - 2 * 3_600_000_000}").decode()
    older_format = orjson.dumps("older:3").decode()  # written before fences carried their time
    alive = orjson.dumps(f"alive:9:{now_us - 60_000_000}").decode()
    try:
        with engine.store.transaction() as tx:
            tx.segments.put_fences({"segcache:w:dead": dead, "segcache:w:older": older_format,
                                    "segcache:w:alive": alive, "segcache:p:3": orjson.dumps("x").decode()})
        ownership = LeasedOwnership(engine.store, lambda: 1_000.0, worker_id="a")
        engine.use_ownership(ownership)
        ownership.refresh()
        engine.ingest([purchase("u1", 3000)])
        with engine.store.read() as tx:
            fences = tx.segments.fences()
        assert "segcache:w:dead" not in fences and "segcache:w:older" not in fences
        assert fences["segcache:w:alive"] == alive and "segcache:p:3" in fences
        assert engine.segments.cache.own_key in fences
        assert spend(engine, "u1") == 3000
    finally:
        engine.close()

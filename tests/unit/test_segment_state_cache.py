"""The segment stage's state held in memory (segments/state_cache.py): it is used between passes, bounded, and
never stale: a pass that rolled back (whole or to a savepoint), a write of segment state made elsewhere (a rebuild,
another engine on the same file) and a failure inside the engine all take it out of memory.

Each test checks the outcome that stale memory would get wrong: ``high_ltv`` is lifetime purchases over 5,000 THB,
so a purchase counted twice or a rebuilt state ignored shows in the membership and the stored sum."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from growthengine.clock import ManualClock, to_us
from growthengine.domain.events import Event
from growthengine.engine import Engine
from growthengine.segments.feeds import feed_id
from growthengine.segments.model import EventAggregate
from growthengine.storage.segment_store import Transition
from growthengine.storage.unit_of_work import Tx
from tests.conftest import make_engine

_n = [0]


def purchase(user: str, amount: int) -> dict[str, Any]:
    _n[0] += 1
    return {"type": "track", "userId": user, "event": "purchase", "messageId": f"buy-{_n[0]}",
            "properties": {"order_id": f"O{_n[0]}", "amount": amount, "listing_ids": ["L1"]}}


def spend_feed(engine: Engine) -> str:
    """The feed of high_ltv's lifetime purchase sum."""
    nodes = [n for n in engine.segments.segments["high_ltv"].condition.items  # type: ignore[union-attr]
             if isinstance(n, EventAggregate) and n.event == "purchase"]
    return feed_id(nodes[0])


def stored_spend(engine: Engine, user: str) -> float:
    with engine.store.transaction() as tx:
        state = tx.segments.load_states([user])[user]
    return float(state["f"][spend_feed(engine)][""]["s"])


def in_high_ltv(engine: Engine, user: str) -> bool:
    with engine.store.transaction() as tx:
        return "high_ltv" in engine.segments.user_segments(tx, user)


def direct_purchase(engine: Engine, user: str, amount: int) -> Event:
    """A purchase handed to the stage directly (not in the log): what a pass would apply."""
    return Event(user_id=user, name="purchase", ts_us=to_us(engine.clock.now()), id=10**9,
                 properties={"order_id": "direct", "amount": amount, "listing_ids": ["L1"]})


def test_state_stays_in_memory_between_passes_and_matches_what_is_stored(engine: Engine) -> None:
    engine.ingest([purchase("u1", 3000)])
    assert "u1" in engine.segments.cache
    hits = engine.segments.cache.hits
    engine.ingest([purchase("u1", 2500)])
    assert engine.segments.cache.hits > hits, "the second pass used the state in memory"
    assert stored_spend(engine, "u1") == 5500 and in_high_ltv(engine, "u1")
    with engine.store.transaction() as tx:
        assert tx.segments.load_states(["u1"])["u1"] == engine.segments.cache._states["u1"]


def test_the_least_recently_used_users_are_evicted_and_read_again(engine: Engine) -> None:
    engine.segments.cache.capacity = 2
    for user in ("u1", "u2", "u3"):
        engine.ingest([purchase(user, 3000)])
    assert len(engine.segments.cache) == 2
    assert "u1" not in engine.segments.cache and {"u2", "u3"} <= set(engine.segments.cache._states)
    misses = engine.segments.cache.misses
    engine.ingest([purchase("u1", 2500)])
    assert engine.segments.cache.misses == misses + 1, "the evicted user was read from the database"
    assert "u1" in engine.segments.cache and "u2" not in engine.segments.cache
    assert stored_spend(engine, "u1") == 5500 and in_high_ltv(engine, "u1")


def test_a_pass_that_rolled_back_is_not_remembered(engine: Engine) -> None:
    engine.ingest([purchase("u1", 3000)])
    with pytest.raises(RuntimeError), engine.store.transaction() as tx:
        engine.segments.on_events(tx, [direct_purchase(engine, "u1", 2500)], {})
        raise RuntimeError("the batch failed after the segment stage")
    engine.ingest([purchase("u1", 1000)])
    assert stored_spend(engine, "u1") == 4000, "the rolled-back 2,500 is not counted"
    assert not in_high_ltv(engine, "u1")


def test_a_pass_rolled_back_to_its_savepoint_is_not_remembered_in_the_same_transaction(engine: Engine) -> None:
    engine.ingest([purchase("u1", 3000)])
    with engine.store.transaction() as tx:
        savepoint = tx.conn.begin_nested()
        engine.segments.on_events(tx, [direct_purchase(engine, "u1", 2500)], {})
        savepoint.rollback()  # as the pipeline does when a stage fails
        engine.segments.on_events(tx, [direct_purchase(engine, "u1", 1000)], {})
    assert stored_spend(engine, "u1") == 4000
    assert not in_high_ltv(engine, "u1")


class _FailingListener:
    def on_transitions(self, tx: Tx, transitions: list[Transition]) -> None:
        raise RuntimeError("a flow failed")


def test_a_failure_inside_the_engine_drops_what_it_held(engine: Engine) -> None:
    engine.ingest([purchase("u1", 3000)])
    listeners = engine.segments.listeners
    engine.segments.listeners = [_FailingListener()]
    try:
        with pytest.raises(RuntimeError), engine.store.transaction() as tx:
            engine.segments.on_events(tx, [direct_purchase(engine, "u1", 2500)], {})  # enters high_ltv: fails
    finally:
        engine.segments.listeners = listeners
    assert len(engine.segments.cache) == 0
    engine.ingest([purchase("u1", 1000)])
    assert stored_spend(engine, "u1") == 4000


def test_state_written_elsewhere_drops_that_partition_from_memory(engine: Engine) -> None:
    engine.ingest([purchase("u1", 3000)])
    engine.ingest([purchase("u9", 3000)])
    with engine.store.transaction() as tx:  # a rebuild found less (any write not made through the cache)
        state = tx.segments.load_states(["u1"])["u1"]
        state["f"][spend_feed(engine)][""]["s"] = 0
        tx.segments.save_states({"u1": state}, 0)
    engine.ingest([purchase("u1", 2500)])
    assert stored_spend(engine, "u1") == 2500, "the state written elsewhere was read, not the one in memory"
    assert not in_high_ltv(engine, "u1")


def test_a_rebuild_in_this_process_replaces_what_memory_held(engine: Engine) -> None:
    engine.ingest([purchase("u1", 3000)])
    engine.rebuild_segments()
    assert len(engine.segments.cache) == 0
    engine.ingest([purchase("u1", 2500)])
    assert stored_spend(engine, "u1") == 5500 and in_high_ltv(engine, "u1")


def test_two_engines_on_one_file_do_not_trust_each_others_memory(sqlite_url: str, clock: ManualClock,
                                                                  tmp_path: Path) -> None:
    first = make_engine(sqlite_url, clock, tmp_path / "a")
    second = make_engine(sqlite_url, clock, tmp_path / "b")
    try:
        first.ingest([purchase("u1", 3000)])
        second.ingest([purchase("u1", 1000)])  # applied by the second engine's stage, over the stored state
        assert stored_spend(second, "u1") == 4000
        first.ingest([purchase("u1", 500)])
        assert stored_spend(first, "u1") == 4500, "the first engine read what the second wrote"
        clock.set(clock.now() + dt.timedelta(minutes=1))
        first.ingest([purchase("u1", 600)])
        assert in_high_ltv(first, "u1")
    finally:
        second.close()
        first.close()

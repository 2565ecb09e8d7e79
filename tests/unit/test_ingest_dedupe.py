"""Idempotent ingestion (ingest/service.py, ``_drop_duplicates``): a ``messageId`` already in the log, or met earlier
in the same group of batches, is a duplicate: counted in its own batch's answer, stored once, applied once; a call
without one is never a duplicate. Through the real service on a throw-away SQLite database (and PostgreSQL, for
two engines storing the same id in the same instant)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from growthengine.clock import ManualClock, to_us
from growthengine.domain.events import Event
from growthengine.domain.partitions import partition_of
from growthengine.ingest.service import IngestionService, IngestRequest, IngestResult
from growthengine.storage.unit_of_work import Store
from tests.conftest import START
from tests.pg_cluster import PgCluster
from tests.waiting import wait_until

T0 = "2026-01-05T01:00:00Z"


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = Store.open(sqlite_url)
    yield opened
    opened.close()


@pytest.fixture
def service(store: Store, clock: ManualClock) -> IngestionService:
    return IngestionService(store, clock)


def track(user: str, event: str = "viewed", message_id: str | None = None, **properties: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"type": "track", "userId": user, "event": event, "timestamp": T0,
                            "properties": properties}
    if message_id is not None:
        call["messageId"] = message_id
    return call


def counts(result: IngestResult) -> tuple[int, int, int]:
    return result.accepted, result.duplicates, len(result.rejected)


def events(store: Store, user: str) -> list[Event]:
    with store.read() as tx:
        return tx.events.for_user(user)


def test_a_message_id_already_stored_is_a_duplicate_stored_once(service: IngestionService, store: Store) -> None:
    assert counts(service.ingest([track("u1", message_id="m1", n=1)])) == (1, 0, 0)
    assert counts(service.ingest([track("u1", message_id="m1", n=2)])) == (0, 1, 0)
    stored = events(store, "u1")
    assert [(e.message_id, e.properties) for e in stored] == [("m1", {"n": 1})]


def test_within_one_batch_the_first_of_a_message_id_is_kept_and_the_rest_are_duplicates(
        service: IngestionService, store: Store) -> None:
    result = service.ingest([track("u1", message_id="m1", n=1), track("u1", message_id="m2", n=2),
                             track("u1", message_id="m1", n=3), track("u1", message_id="m1", n=4)])
    assert counts(result) == (2, 2, 0)
    assert sorted((e.message_id, e.properties["n"]) for e in events(store, "u1")) == [("m1", 1), ("m2", 2)]


def test_a_call_without_a_message_id_is_never_a_duplicate(service: IngestionService, store: Store) -> None:
    assert counts(service.ingest([track("u1", n=1), track("u1", n=1)])) == (2, 0, 0)
    assert counts(service.ingest([track("u1", n=1)])) == (1, 0, 0)
    assert [e.properties for e in events(store, "u1")] == [{"n": 1}] * 3


def test_a_batch_mixing_stored_new_and_rejected_calls_keeps_only_the_new(
        service: IngestionService, store: Store) -> None:
    service.ingest([track("u1", message_id="old", n=0)])
    result = service.ingest([track("u1", message_id="new-1", n=1), track("u1", message_id="old", n=9),
                             {"type": "track", "event": "no_user"}, track("u2", message_id="new-2", n=2),
                             track("u2", n=3)])
    assert counts(result) == (3, 1, 1) and result.rejected[0].index == 2
    assert sorted(e.properties["n"] for e in events(store, "u1")) == [0, 1]
    assert sorted(e.properties["n"] for e in events(store, "u2")) == [2, 3]


def test_a_duplicate_is_not_applied_to_the_profile(service: IngestionService, store: Store) -> None:
    identify = {"type": "identify", "userId": "u1", "messageId": "i1", "timestamp": T0, "traits": {"plan": "a"}}
    service.ingest([identify])
    again = {**identify, "traits": {"plan": "b"}}
    assert counts(service.ingest([again])) == (0, 1, 0)
    with store.read() as tx:
        profile = tx.profiles.get("u1")
    assert profile is not None and profile.traits["plan"] == "a"


def test_batches_stored_together_each_count_their_own_duplicates(service: IngestionService, store: Store) -> None:
    """Group commit: the answers are those the batches would get one after the other, in order."""
    service.ingest([track("u0", message_id="stored")])
    first, second, third = service.ingest_many([
        IngestRequest([track("u1", message_id="a", n=1), track("u1", message_id="stored")]),
        IngestRequest([track("u1", message_id="a", n=2), track("u1", message_id="b", n=3)]),
        IngestRequest([track("u1", n=4)]),
    ])
    assert (counts(first), counts(second), counts(third)) == ((1, 1, 0), (1, 1, 0), (1, 0, 0))
    assert sorted(e.properties["n"] for e in events(store, "u1")) == [1, 3, 4]


def test_an_integer_message_id_and_its_text_are_the_same_id(service: IngestionService, store: Store) -> None:
    assert counts(service.ingest([track("u1", n=1) | {"messageId": 42}])) == (1, 0, 0)
    assert counts(service.ingest([track("u1", message_id="42", n=2)])) == (0, 1, 0)
    assert [e.properties["n"] for e in events(store, "u1")] == [1]


@pytest.mark.postgres
def test_a_message_id_another_engine_stores_in_the_same_instant_is_a_duplicate(pg_cluster: PgCluster) -> None:
    """Two engines on one PostgreSQL: the other engine's row is written but not committed when this one checks the
    log, so this one's insert waits on it and loses; the call counts as a duplicate, its own is not stored."""
    url = pg_cluster.new_database()
    other, mine, watcher = Store.open(url), Store.open(url), Store.open(url)
    clock = ManualClock(START)
    answers: list[IngestResult] = []
    try:
        with other.transaction() as tx:
            tx.events.append([{"message_id": "m1", "type": "track", "name": "viewed", "user_id": "u1",
                               "anonymous_id": None, "ts_us": to_us(START), "received_us": to_us(START),
                               "payload": "{}", "extra": None, "partition": partition_of("u1"), "origin": None}])
            racer = threading.Thread(target=lambda: answers.append(IngestionService(mine, clock).ingest(
                [track("u1", message_id="m1", n=1), track("u1", message_id="m2", n=2)])))
            racer.start()

            def waiting_on_a_lock() -> bool:
                with watcher.read() as watch:
                    return bool(watch.conn.exec_driver_sql(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").scalar())

            wait_until(waiting_on_a_lock, what="the second engine's insert waiting on the first's")
        racer.join(timeout=30)
        assert not racer.is_alive()
        [answer] = answers
        assert counts(answer) == (1, 1, 0)
        stored = sorted((str(e.message_id), e.properties) for e in events(mine, "u1"))
        assert stored == [("m1", {}), ("m2", {"n": 2})], "the other engine's m1 stands; this one's is not stored"
    finally:
        for store in (other, mine, watcher):
            store.close()

"""Idempotent ingestion (ingest/service.py, ``_drop_duplicates``): a ``messageId`` already in the log, or met earlier
in the same group of batches, is a duplicate: counted in its own batch's answer, stored once, applied once; a call
without one is never a duplicate. Through the real service on a throw-away SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from growthengine.clock import ManualClock
from growthengine.domain.events import Event
from growthengine.ingest.service import IngestionService, IngestRequest, IngestResult
from growthengine.storage.unit_of_work import Store

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

"""Group commit: requests that arrive together share one transaction, and each keeps its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from growthengine.api.group_commit import GroupCommit
from growthengine.engine import Engine
from growthengine.ingest.service import IngestRequest, IngestResult

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _count_transactions(engine: Engine) -> list[int]:
    """Wraps ``ingest_many``; the list gets the number of requests of each transaction."""
    sizes: list[int] = []
    original = engine.ingestion.ingest_many

    def counted(requests: Any) -> list[IngestResult]:
        sizes.append(len(requests))
        return original(requests)

    engine.ingestion.ingest_many = counted  # type: ignore[method-assign]
    return sizes


async def test_requests_that_come_together_share_one_commit(engine: Engine) -> None:
    sizes = _count_transactions(engine)
    commits = GroupCommit(engine.ingestion)
    first = IngestRequest([
        {"type": "track", "userId": "u1", "event": "app_opened", "messageId": "m1"},
        {"type": "track", "userId": "u1"},
    ])
    second = IngestRequest([
        {"type": "track", "userId": "u2", "event": "app_opened", "messageId": "m1"},
        {"type": "identify", "userId": "u2", "traits": {"name": "นก"}, "messageId": "m2"},
    ], batch_sent_at=None)
    a, b = await asyncio.gather(commits.ingest(first), commits.ingest(second))
    assert sizes == [2]
    # The answers are those of the two requests one after the other.
    assert (a.accepted, a.duplicates, [r.index for r in a.rejected]) == (1, 0, [1])
    assert (b.accepted, b.duplicates, b.rejected) == (1, 1, [])
    view = engine.user_view("u2")
    assert view is not None and view["traits"] == {"name": "นก"}
    with engine.store.transaction() as tx:
        assert tx.events.count() == 2


async def test_a_visitor_identified_by_a_request_of_the_same_group_is_a_known_user(engine: Engine) -> None:
    commits = GroupCommit(engine.ingestion)
    browse = IngestRequest([{"type": "track", "anonymousId": "a-1", "event": "item_viewed",
                             "timestamp": "2026-01-05T01:00:00Z"}])
    sign_in = IngestRequest([{"type": "identify", "userId": "u9", "anonymousId": "a-1", "traits": {"name": "Nok"},
                              "timestamp": "2026-01-05T01:05:00Z"}])
    await asyncio.gather(commits.ingest(browse), commits.ingest(sign_in))
    view = engine.user_view("u9")
    assert view is not None and view["computed"]["last_active"] == "2026-01-05T01:00:00Z"
    with engine.store.transaction() as tx:
        assert sorted(e.name for e in tx.events.for_user("u9")) == ["identify", "item_viewed"]


async def test_a_failing_request_fails_alone(engine: Engine) -> None:
    # Ingestion only appends and answers (the stages read the log later), so a failure is the database's own:
    # a trigger refuses one user's rows.
    with engine.store.transaction() as tx:
        tx.conn.exec_driver_sql("CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.user_id = 'boom' "
                                "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END")
    commits = GroupCommit(engine.ingestion)
    good = commits.ingest(IngestRequest([{"type": "track", "userId": "u1", "event": "app_opened"}]))
    bad = commits.ingest(IngestRequest([{"type": "track", "userId": "boom", "event": "app_opened"}]))
    results = await asyncio.gather(good, bad, return_exceptions=True)
    assert isinstance(results[0], IngestResult) and results[0].accepted == 1
    assert isinstance(results[1], Exception) and "refused by the test trigger" in str(results[1])
    assert engine.user_view("u1") is not None and engine.user_view("boom") is None


async def test_a_group_is_bounded(engine: Engine) -> None:
    sizes = _count_transactions(engine)
    commits = GroupCommit(engine.ingestion, max_calls=3)
    requests = [IngestRequest([{"type": "track", "userId": f"u{i}", "event": "app_opened"}] * 2) for i in range(3)]
    results = await asyncio.gather(*(commits.ingest(r) for r in requests))
    assert sizes == [1, 1, 1] and [r.accepted for r in results] == [2, 2, 2]

"""Ingestion parsed ahead of the transaction (``IngestionService.parse``, as the API's group commit does on its event
loop) stores exactly what parsing inside ``ingest_many`` stores; and the validation's faster paths (nesting checked
level by level, string ids, ``extra`` by set difference, fractional seconds cut without a template) answer as the
plain ones did. Through the real service on a throw-away SQLite database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from growthengine.clock import ManualClock
from growthengine.domain.calls import MAX_NESTING, InvalidCall, parse_call
from growthengine.ingest.service import IngestionService, IngestRequest, ParsedRequest
from growthengine.storage.unit_of_work import Store
from growthengine.timefmt import TimeFormatError, parse_instant
from tests.conftest import START

T0 = "2026-01-05T01:00:00Z"
TOLERANCE = dt.timedelta(minutes=5)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    opened = Store.open(sqlite_url)
    yield opened
    opened.close()


def _requests() -> list[IngestRequest]:
    """A mix: tracks with context, an identify with a bad phone (a warning), a visitor signing in, bad calls."""
    return [
        IngestRequest([
            {"type": "track", "userId": "u1", "event": "item_viewed", "messageId": "m1", "timestamp": T0,
             "properties": {"listing_id": "L1", "title": "กล้อง"}, "context": {"locale": "th-TH"}, "writeKey": "k",
             "sentAt": T0, "integrations": {"All": True}},
            {"type": "track", "userId": "u1", "event": "", "timestamp": T0},  # rejected: no event name
            {"type": "identify", "userId": "u2", "traits": {"phone": "not a phone", "name": "นก"}, "messageId": "m2",
             "timestamp": "2026-01-05T00:59:00.123456789z"},
        ]),
        IngestRequest([
            {"type": "track", "anonymousId": "a-1", "event": "app_opened", "messageId": "m3",
             "timestamp": "2026-01-05T00:58:00+07:00"},
            {"type": "identify", "userId": "u3", "anonymousId": "a-1", "messageId": "m4", "timestamp": T0},
            {"type": "track", "userId": "u1", "event": "item_viewed", "messageId": "m1", "timestamp": T0},  # dup
            "not an object",
        ]),
    ]


def _stored(store: Store) -> list[tuple[Any, ...]]:
    with store.transaction() as tx:
        return [tuple(r) for r in tx.conn.exec_driver_sql(
            "SELECT message_id, type, name, user_id, anonymous_id, ts_us, received_us, payload, extra, partition, "
            "origin FROM events ORDER BY id")]


def _profiles(store: Store) -> list[tuple[Any, ...]]:
    with store.transaction() as tx:
        return [tuple(r) for r in tx.conn.exec_driver_sql("SELECT * FROM profiles ORDER BY user_id")]


def _answers(results: list[Any]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in results]


def test_parsed_ahead_stores_and_answers_as_parsed_in_the_transaction(tmp_path: Any) -> None:
    answers, rows, profiles = [], [], []
    for ahead in (False, True):
        store = Store.open(f"sqlite:///{tmp_path / f'ahead-{ahead}.db'}")
        try:
            service = IngestionService(store, ManualClock(START))
            requests: list[IngestRequest | ParsedRequest] = list(_requests())
            if ahead:
                requests = [service.parse(r) for r in _requests()]
            answers.append(_answers(service.ingest_many(requests)))
            rows.append(_stored(store))
            profiles.append(_profiles(store))
        finally:
            store.close()
    assert answers[0] == answers[1]
    assert rows[0] == rows[1] and profiles[0] == profiles[1]
    first, second = answers[0]
    assert (first["accepted"], first["duplicates"], [r["index"] for r in first["rejected"]]) == (2, 0, [1])
    assert [w["path"] for w in first["warnings"]] == ["traits.phone"]
    assert (second["accepted"], second["duplicates"], [r["index"] for r in second["rejected"]]) == (2, 1, [3])
    # The write key is never stored; the other fields beside the core ones are kept in ``extra``, in their order.
    extra = {r[0]: r[8] for r in rows[0]}
    assert extra["m1"] == '{"context":{"locale":"th-TH"},"sentAt":"2026-01-05T01:00:00Z","integrations":{"All":true}}'
    assert extra["m2"] is None


def test_a_parsed_request_stored_again_counts_afresh(store: Store) -> None:
    service = IngestionService(store, ManualClock(START))
    parsed = service.parse(_requests()[0])
    assert (parsed.result.accepted, parsed.result.duplicates) == (0, 0)  # counted by the store, not by parsing
    first = service.ingest_many([parsed])[0]
    assert (first.accepted, first.duplicates) == (2, 0)
    again = service.ingest_many([parsed])[0]  # as the group commit does when a group fails and each goes alone
    assert (again.accepted, again.duplicates, len(again.rejected), len(again.warnings)) == (0, 2, 1, 1)


def _nested(levels: int) -> dict[str, Any]:
    """A call whose objects and arrays nest ``levels`` deep (the call itself is the first level)."""
    inner: Any = {"x": 1}
    wrappers = levels - 2
    for i in range(wrappers):
        inner = {"k": inner} if (wrappers - 1 - i) % 2 == 0 else [inner]  # the outermost (properties) an object
    return {"type": "track", "userId": "u1", "event": "e", "properties": inner}


def test_nesting_is_refused_one_level_past_the_limit_and_not_before() -> None:
    parse_call(_nested(MAX_NESTING), now=START, future_tolerance=TOLERANCE)
    with pytest.raises(InvalidCall, match=f"at most {MAX_NESTING} levels deep"):
        parse_call(_nested(MAX_NESTING + 1), now=START, future_tolerance=TOLERANCE)
    properties = {f"k{i}": [[1], {"a": [2]}] for i in range(50)}
    wide = {"type": "track", "userId": "u1", "event": "e", "properties": properties}
    assert parse_call(wide, now=START, future_tolerance=TOLERANCE).properties == wide["properties"]


@pytest.mark.parametrize(("value", "error"), [
    ("", "userId must not be empty"),
    (" \u3000\t", "userId must not be empty"),
    ("u\x00", "userId must not contain the NUL character"),
    ("x" * 257, "userId is longer than 256 characters"),
    (True, "userId must be a string (or an integer), got bool"),
    (2**53, "userId as a number must lie within"),
])
def test_bad_ids_are_refused_with_their_reason(value: Any, error: str) -> None:
    with pytest.raises(InvalidCall, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_call({"type": "track", "userId": value, "event": "e"}, now=START, future_tolerance=TOLERANCE)


def test_ids_are_trimmed_and_numbers_are_text() -> None:
    call = parse_call({"type": "track", "userId": " u1\u3000", "anonymousId": 42.0, "messageId": 7, "event": "e"},
                      now=START, future_tolerance=TOLERANCE)
    assert (call.user_id, call.anonymous_id, call.message_id) == ("u1", "42", "7")


@pytest.mark.parametrize(("wire", "instant"), [
    ("2026-01-05T01:00:00.123456789Z", dt.datetime(2026, 1, 5, 1, 0, 0, 123456, tzinfo=dt.UTC)),
    ("2026-01-05t01:00:00.5z", dt.datetime(2026, 1, 5, 1, 0, 0, 500000, tzinfo=dt.UTC)),
    ("2026-01-05 08:00:00.1234567+07:00", dt.datetime(2026, 1, 5, 1, 0, 0, 123456, tzinfo=dt.UTC)),
    ("2026-01-05T01:00:00.123456Z", dt.datetime(2026, 1, 5, 1, 0, 0, 123456, tzinfo=dt.UTC)),
])
def test_fractional_seconds_beyond_six_digits_are_cut(wire: str, instant: dt.datetime) -> None:
    assert parse_instant(wire) == instant


def test_a_time_that_is_not_one_is_still_refused() -> None:
    with pytest.raises(TimeFormatError, match="is not an ISO-8601 time"):
        parse_instant("2026-01-05T01:00:00.Z")

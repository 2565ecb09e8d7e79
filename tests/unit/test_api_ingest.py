"""Ingestion over HTTP (CONTRACT.md 3.1): the answer shape, idempotency, partial rejection, bad bodies, time."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from growthengine.clock import ManualClock, from_us
from growthengine.engine import Engine
from tests.unit.api_client import (
    ADMIN,
    WRITE,
    api_client,
    assert_error,
    assert_ingest,
    event_count,
    stored_rows,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as c:
        yield c


async def get_user(client: httpx.AsyncClient, user_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/users/{user_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- happy paths and the answer shape ------------------------------------------------------------------------------


async def test_identify_then_track_build_a_profile(client: httpx.AsyncClient) -> None:
    identify = {"userId": "u1", "traits": {"email": "somchai@example.com", "phone": "+66812345678",
                                           "language": "th", "timezone": "Asia/Bangkok",
                                           "consent": {"push": True, "email": False}, "favourite_colour": "green"}}
    assert_ingest(await client.post("/v1/identify", json=identify, headers=WRITE), accepted=1)
    track = {"userId": "u1", "event": "item_viewed", "properties": {"listing_id": "L1", "price": 120.5}}
    assert_ingest(await client.post("/v1/track", json=track, headers=WRITE), accepted=1)
    user = await get_user(client, "u1")
    assert user["userId"] == "u1"
    assert user["traits"] == identify["traits"]
    assert user["computed"]["last_active"] == "2026-01-05T02:00:00Z"
    assert user["segments"] == []


async def test_batch_accepts_identify_and_track(client: httpx.AsyncClient, engine: Engine) -> None:
    batch = {"batch": [
        {"type": "identify", "userId": "u1", "traits": {"name": "Somchai"}},
        {"type": "track", "userId": "u1", "event": "add_to_cart", "properties": {"listing_id": "L9", "stock": 2}},
        {"type": "track", "userId": "u2", "event": "app_opened"},
    ]}
    response = await client.post("/v1/batch", json=batch, headers=WRITE)
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert [r["name"] for r in stored_rows(engine, "u1")] == ["identify", "add_to_cart"]
    assert (await get_user(client, "u2"))["traits"] == {}


async def test_the_admin_key_may_ingest_too(client: httpx.AsyncClient) -> None:
    assert_ingest(await client.post("/v1/track", json={"userId": "u1", "event": "app_opened"}, headers=ADMIN), 1)


async def test_message_id_makes_calls_idempotent(client: httpx.AsyncClient, engine: Engine) -> None:
    call = {"userId": "u1", "event": "purchase", "properties": {"amount": 500}, "messageId": "m-1"}
    assert_ingest(await client.post("/v1/track", json=call, headers=WRITE), accepted=1)
    assert_ingest(await client.post("/v1/track", json=call, headers=WRITE), accepted=0, duplicates=1)
    changed = {**call, "properties": {"amount": 999999}}
    batch = {"batch": [{"type": "track", **changed}, {"type": "track", **call, "messageId": "m-2"},
                       {"type": "track", **call, "messageId": "m-2"}]}
    assert_ingest(await client.post("/v1/batch", json=batch, headers=WRITE), accepted=1, duplicates=2)
    rows = stored_rows(engine, "u1")
    assert [r["message_id"] for r in rows] == ["m-1", "m-2"]
    assert all('"amount":500' in r["payload"] for r in rows)


async def test_identify_with_a_used_message_id_changes_nothing(client: httpx.AsyncClient) -> None:
    first = {"userId": "u1", "traits": {"name": "Nok"}, "messageId": "id-1"}
    assert_ingest(await client.post("/v1/identify", json=first, headers=WRITE), accepted=1)
    again = {**first, "traits": {"name": "Somchai"}}
    assert_ingest(await client.post("/v1/identify", json=again, headers=WRITE), accepted=0, duplicates=1)
    assert (await get_user(client, "u1"))["traits"] == {"name": "Nok"}


async def test_a_bad_item_in_a_batch_is_rejected_alone(client: httpx.AsyncClient, engine: Engine) -> None:
    batch = {"batch": [
        {"type": "identify", "userId": "u1", "traits": {"name": "Nok", "consent": {"push": True}}},
        {"type": "track", "userId": "u1"},                                          # no event name
        {"type": "identify", "userId": "u1", "traits": {"phone": "0812345678"}},    # Thai national: kept as E.164
        "not an object",
        {"type": "launch", "userId": "u1"},                                         # unknown type
        {"type": "track", "event": "app_opened"},                                   # no id at all
        {"type": "identify", "userId": "u2", "traits": {"consent": {"fax": True}}},  # unknown channel: dropped
        {"type": "track", "userId": "u1", "event": "item_viewed", "properties": {"listing_id": "L1"}},
        {"type": "track", "userId": "u3", "event": "app_opened", "timestamp": "yesterday"},
        {"type": "identify", "userId": "u3", "traits": {"timezone": "Mars/Olympus_Mons"}},  # dropped
    ]}
    response = await client.post("/v1/batch", json=batch, headers=WRITE)
    rejected = assert_ingest(response, accepted=5, rejected=[1, 3, 4, 5, 8],
                             warned=["traits.consent.fax", "traits.timezone"])
    errors = {r["index"]: r["error"] for r in rejected}
    assert "event" in errors[1]
    assert "object" in errors[3]
    assert "type" in errors[4]
    assert "userId" in errors[5] and "anonymousId" in errors[5]
    assert "timestamp" in errors[8]
    assert [w["index"] for w in response.json()["warnings"]] == [6, 9]
    assert [r["name"] for r in stored_rows(engine, "u1")] == ["identify", "identify", "item_viewed"]
    assert (await get_user(client, "u1"))["traits"] == {"name": "Nok", "consent": {"push": True},
                                                        "phone": "+66812345678"}
    for dropped_all in ("u2", "u3"):  # the call is kept, the trait is not
        assert (await get_user(client, dropped_all))["traits"] == {}


BAD_TRAITS: list[dict[str, Any]] = [
    {"email": "not-an-email"}, {"phone": 66812345678}, {"phone": "0812"}, {"phone": "+66 12"}, {"language": "fr"},
    {"is_seller": "yes"}, {"consent": {"push": "true"}}, {"consent": ["push"]}, {"name": 42}, {"timezone": "America"},
    {"timezone": "Etc"}, {"timezone": "zone.tab"}, {"timezone": "../etc/passwd"}, {"timezone": "a\u0000b"},
]


async def test_a_known_trait_with_a_bad_value_is_dropped_and_reported(client: httpx.AsyncClient, engine: Engine,
                                                                      subtests: pytest.Subtests) -> None:
    good = {"province": "Chiang Mai", "push_token": "tok-1"}
    for i, traits in enumerate(BAD_TRAITS):
        with subtests.test(traits=traits):
            user = f"u{i}"
            response = await client.post("/v1/identify", json={"userId": user, "traits": {**traits, **good}},
                                         headers=WRITE)
            (bad,) = traits
            warning = response.json()["warnings"][0]
            assert_ingest(response, accepted=1, warned=[warning["path"]])
            assert warning["index"] == 0 and warning["path"].startswith(f"traits.{bad}")
            assert warning["path"] in warning["message"]
            assert (await get_user(client, user))["traits"] == good  # the rest of the call is kept
    assert event_count(engine) == len(BAD_TRAITS)


async def test_a_bad_phone_loses_neither_the_email_nor_the_consent(client: httpx.AsyncClient) -> None:
    call = {"userId": "u1", "traits": {"phone": "081-234", "email": "nok@example.com",
                                       "consent": {"email": True, "sms": True, "fax": True}}}
    response = await client.post("/v1/identify", json=call, headers=WRITE)
    assert_ingest(response, accepted=1, warned=["traits.phone", "traits.consent.fax"])
    assert (await get_user(client, "u1"))["traits"] == {"email": "nok@example.com",
                                                        "consent": {"email": True, "sms": True}}


@pytest.mark.parametrize(("sent", "stored"), [
    ("081-234-5678", "+66812345678"), ("0812345678", "+66812345678"), ("+66 81 234 5678", "+66812345678"),
    ("02-123-4567", "+6621234567"), ("+1 650-253-0000", "+16502530000"), ("(081) 234 5678", "+66812345678"),
])
async def test_phone_numbers_are_stored_as_e164(client: httpx.AsyncClient, sent: str, stored: str) -> None:
    response = await client.post("/v1/identify", json={"userId": "u1", "traits": {"phone": sent}}, headers=WRITE)
    assert_ingest(response, accepted=1)
    assert (await get_user(client, "u1"))["traits"] == {"phone": stored}


async def test_a_single_call_route_answers_400_for_a_bad_call(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/v1/track", json={"userId": "u1"}, headers=WRITE), 400, "invalid_call")
    wrong_type = {"type": "identify", "userId": "u1", "event": "x"}
    error = assert_error(await client.post("/v1/track", json=wrong_type, headers=WRITE), 400, "invalid_call")
    assert "type" in error["message"]
    assert_error(await client.post("/v1/identify", json={"traits": {}}, headers=WRITE), 400, "invalid_call")


async def test_a_bad_user_id_is_rejected(client: httpx.AsyncClient, subtests: pytest.Subtests) -> None:
    bad_ids: list[Any] = [True, 1.5, [], {}, "", "   ", "x" * 257, 2**64]
    for user_id in bad_ids:
        with subtests.test(user_id=user_id):
            body = {"userId": user_id, "event": "app_opened"}
            assert_error(await client.post("/v1/track", json=body, headers=WRITE), 400, "invalid_call")


async def test_nul_in_an_id_or_event_name_is_rejected(client: httpx.AsyncClient, engine: Engine,
                                                       subtests: pytest.Subtests) -> None:
    """PostgreSQL cannot store NUL in text; such a call is refused alone instead of failing its whole batch."""
    calls: list[dict[str, Any]] = [
        {"userId": "u\u00001", "event": "x"}, {"userId": "u1", "event": "x\u0000"},
        {"anonymousId": "\u0000", "event": "x"}, {"userId": "u1", "event": "x", "messageId": "m\u0000"},
    ]
    for n, call in enumerate(calls, start=1):
        with subtests.test(call=call):
            batch = {"batch": [{"type": "track", **call}, {"type": "track", "userId": "u1", "event": "ok"}]}
            response = await client.post("/v1/batch", json=batch, headers=WRITE)
            assert "NUL" in assert_ingest(response, accepted=1, rejected=[0])[0]["error"]
            assert event_count(engine) == n
    assert_error(await client.get("/v1/users/u%001", headers=ADMIN), 400, "invalid_request")


async def test_nul_inside_properties_and_traits_is_kept(client: httpx.AsyncClient) -> None:
    body = {"userId": "u1", "traits": {"name": "a\u0000b", "note": "\u0000"}}
    assert_ingest(await client.post("/v1/identify", json=body, headers=WRITE), accepted=1)
    assert (await get_user(client, "u1"))["traits"] == body["traits"]


async def test_deeply_nested_items_are_rejected_alone(client: httpx.AsyncClient, engine: Engine,
                                                      subtests: pytest.Subtests) -> None:
    """Nesting that JSON parsing allows but storing (orjson: 254 levels) or quoting (repr: ~1000) would not."""
    for depth in (60, 300, 1000):
        with subtests.test(depth=depth):
            nested = b"[" * depth + b"]" * depth
            body = (b'{"batch": [{"type": "track", "userId": "u1", "event": "x", "properties": {"deep": ' + nested
                    + b'}}, {"type": ' + nested + b', "userId": "u1"}, {"type": "identify", "userId": "u1", '
                    b'"traits": {"t": ' + nested + b'}}, {"type": "track", "userId": "u1", "event": "kept"}]}')
            response = await client.post("/v1/batch", content=body, headers=WRITE)
            if depth < 64:
                assert_ingest(response, accepted=3, rejected=[1])
            else:
                rejected = assert_ingest(response, accepted=1, rejected=[0, 1, 2])
                assert all("levels deep" in r["error"] for r in rejected)
    assert [r["name"] for r in stored_rows(engine, "u1")] == ["x", "identify", "kept", "kept", "kept"]


async def test_a_huge_bad_type_is_not_quoted_back(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/batch", json={"batch": [{"type": "x" * 100_000, "userId": "u1"},
                                                              {"type": {"a": ["b"] * 10_000}, "userId": "u1"}]},
                                  headers=WRITE)
    assert all(len(r["error"]) < 200 for r in assert_ingest(response, accepted=0, rejected=[0, 1]))


async def test_an_integer_user_id_is_accepted_as_text(client: httpx.AsyncClient) -> None:
    assert_ingest(await client.post("/v1/track", json={"userId": 12345, "event": "app_opened"}, headers=WRITE), 1)
    assert (await get_user(client, "12345"))["userId"] == "12345"


# -- bodies that are not calls at all -------------------------------------------------------------------------------


ROUTES = ("/v1/batch", "/v1/identify", "/v1/track")


async def test_a_body_that_is_not_json_or_empty_is_400(client: httpx.AsyncClient, subtests: pytest.Subtests) -> None:
    for content in (b"{not json", b"\xff\xfe\x00", b"[1, 2", b"nul", b'{"batch": [}', b"", b"   \n"):
        for route in ROUTES:
            with subtests.test(route=route, content=content):
                response = await client.post(route, content=content,
                                             headers={**WRITE, "Content-Type": "application/json"})
                assert_error(response, 400, "invalid_json")


async def test_a_body_of_the_wrong_shape_is_400(client: httpx.AsyncClient, subtests: pytest.Subtests) -> None:
    batch_shapes: list[Any] = [[], [{"type": "track"}], "batch", 42, None, True, {}, {"batch": "x"},
                               {"batch": {"0": {}}}, {"batch": None}, {"calls": []}]
    for payload in batch_shapes:
        with subtests.test(route="/v1/batch", payload=payload):
            response = await client.post("/v1/batch", content=orjson.dumps(payload), headers=WRITE)
            assert_error(response, 400, "invalid_body")
    call_shapes: list[Any] = [[], "track", 7, None, [{"userId": "u1", "event": "x"}]]
    for payload in call_shapes:
        for route in ("/v1/identify", "/v1/track"):
            with subtests.test(route=route, payload=payload):
                response = await client.post(route, content=orjson.dumps(payload), headers=WRITE)
                assert_error(response, 400, "invalid_body")


async def test_an_empty_batch_is_accepted_and_does_nothing(client: httpx.AsyncClient, engine: Engine) -> None:
    assert_ingest(await client.post("/v1/batch", json={"batch": []}, headers=WRITE), accepted=0)
    assert event_count(engine) == 0


async def test_a_batch_of_1000_is_accepted_and_1001_is_refused(client: httpx.AsyncClient, engine: Engine) -> None:
    items = [{"type": "track", "userId": f"u{i % 50}", "event": "item_viewed"} for i in range(1000)]
    assert_ingest(await client.post("/v1/batch", json={"batch": items}, headers=WRITE), accepted=1000)
    response = await client.post("/v1/batch", json={"batch": [*items, items[0]]}, headers=WRITE)
    error = assert_error(response, 413, "batch_too_large")
    assert "1000" in error["message"]
    assert event_count(engine) == 1000


async def test_a_body_larger_than_the_limit_is_413(client: httpx.AsyncClient, engine: Engine) -> None:
    engine.settings.max_body_bytes = 10_000
    big = {"batch": [{"type": "track", "userId": "u1", "event": "x", "properties": {"blob": "a" * 20_000}}]}
    assert_error(await client.post("/v1/batch", json=big, headers=WRITE), 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"batch": [], "pad": "'
        for _ in range(30):
            yield b"a" * 1000
        yield b'"}'

    assert_error(await client.post("/v1/batch", content=chunks(), headers=WRITE), 413, "payload_too_large")
    assert event_count(engine) == 0


async def test_a_bad_content_length_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/batch", content=b'{"batch": []}',
                                 headers={**WRITE, "Content-Length": "lots"})
    assert response.status_code == 400


# -- time ------------------------------------------------------------------------------------------------------------


async def test_a_past_timestamp_is_history_backfill(client: httpx.AsyncClient, engine: Engine,
                                                     clock: ManualClock) -> None:
    then = clock.now() - dt.timedelta(days=40)
    body = {"userId": "u1", "event": "purchase", "timestamp": then.isoformat()}
    assert_ingest(await client.post("/v1/track", json=body, headers=WRITE), accepted=1)
    assert [from_us(r["ts_us"]) for r in stored_rows(engine, "u1")] == [then]
    user = await get_user(client, "u1")
    assert user["computed"]["first_seen"] == user["computed"]["last_active"] == "2025-11-26T02:00:00Z"


async def test_a_timestamp_more_than_5_minutes_ahead_is_rejected(client: httpx.AsyncClient, clock: ManualClock,
                                                                  subtests: pytest.Subtests) -> None:
    for offset_min, ok in ((4, True), (5, True), (6, False), (60 * 24 * 365, False)):
        with subtests.test(offset_min=offset_min):
            at = (clock.now() + dt.timedelta(minutes=offset_min)).isoformat()
            body = {"userId": "u1", "event": "x", "timestamp": at}
            response = await client.post("/v1/track", json=body, headers=WRITE)
            if ok:
                assert_ingest(response, accepted=1)
            else:
                assert "ahead" in assert_error(response, 400, "invalid_call")["message"]


async def test_a_bad_timestamp_is_a_clear_400(client: httpx.AsyncClient, engine: Engine,
                                              subtests: pytest.Subtests) -> None:
    bad_times: list[Any] = ["garbage", "2026-13-45T00:00:00Z", "", 1767578400, 1.5, True, [], {},
                            "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+07:00", "x" * 10_000,
                            "1899-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "3000-01-01T00:00:00Z"]
    for timestamp in bad_times:
        with subtests.test(timestamp=timestamp):
            body = {"userId": "u1", "event": "x", "timestamp": timestamp}
            error = assert_error(await client.post("/v1/track", json=body, headers=WRITE), 400, "invalid_call")
            assert "timestamp" in error["message"]
            assert len(error["message"]) < 300
    assert event_count(engine) == 0


async def test_a_backfill_back_to_the_unix_epoch_is_accepted(client: httpx.AsyncClient, engine: Engine) -> None:
    body = {"userId": "u1", "event": "purchase", "timestamp": "1970-01-01T00:00:00+00:00"}
    assert_ingest(await client.post("/v1/track", json=body, headers=WRITE), accepted=1)
    identify = {"userId": "u1", "traits": {"timezone": "America/Los_Angeles"}, "timestamp": "1970-01-01T00:00:01Z"}
    assert_ingest(await client.post("/v1/identify", json=identify, headers=WRITE), accepted=1)
    assert [r["name"] for r in stored_rows(engine, "u1")] == ["purchase", "identify"]
    user = await get_user(client, "u1")
    assert user["traits"] == {"timezone": "America/Los_Angeles"}
    assert user["computed"]["first_seen"] == "1970-01-01T00:00:00Z"
    before = {"userId": "u1", "event": "x", "timestamp": "1969-12-31T23:59:59Z"}
    assert "1970" in assert_error(await client.post("/v1/track", json=before, headers=WRITE), 400)["message"]


async def test_timestamps_with_and_without_offset(client: httpx.AsyncClient, engine: Engine) -> None:
    batch = {"batch": [
        {"type": "track", "userId": "u1", "event": "a", "timestamp": "2026-01-05T08:00:00+07:00"},
        {"type": "track", "userId": "u1", "event": "b", "timestamp": "2026-01-05T01:30:00Z"},
        {"type": "track", "userId": "u1", "event": "c", "timestamp": "2026-01-05T01:45:00.123456"},  # UTC
    ]}
    assert_ingest(await client.post("/v1/batch", json=batch, headers=WRITE), accepted=3)
    rows = stored_rows(engine, "u1")
    assert [(r["name"], from_us(r["ts_us"]).isoformat()) for r in rows] == [
        ("a", "2026-01-05T01:00:00+00:00"), ("b", "2026-01-05T01:30:00+00:00"),
        ("c", "2026-01-05T01:45:00.123456+00:00"),
    ]

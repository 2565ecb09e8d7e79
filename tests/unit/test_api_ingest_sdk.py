"""Existing Segment and RudderStack SDKs work unchanged (CONTRACT.md 3.1): Basic auth, gzip, their extra fields,
sentAt skew correction, page/screen/alias/group items, anonymous ids merged on identify."""

from __future__ import annotations

import datetime as dt
import gzip
import zlib
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
    WRITE_KEY,
    api_client,
    assert_error,
    assert_ingest,
    basic,
    event_count,
    gzipped,
    stored_rows,
)

pytestmark = pytest.mark.anyio

SEGMENT_CONTEXT = {
    "library": {"name": "analytics-node", "version": "2.1.0"},
    "ip": "203.0.113.7", "locale": "th-TH", "timezone": "Asia/Bangkok",
    "device": {"id": "d-1", "type": "ios"}, "os": {"name": "iOS", "version": "17.2"},
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as c:
        yield c


def iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rudderstack_batch(clock: ManualClock, *, client_ahead: dt.timedelta, sent_after: dt.timedelta) -> dict[str, Any]:
    """A batch as RudderStack's JavaScript SDK sends it: no ``timestamp``, client-clock times, ``sentAt``."""
    client_now = clock.now() + client_ahead
    original = client_now - sent_after
    return {
        "batch": [{
            "type": "track", "event": "item_viewed", "userId": "u1", "anonymousId": "rs-anon-1",
            "channel": "web", "rudderId": "r-1", "messageId": "rs-msg-1",
            "properties": {"listing_id": "L1", "price": 990},
            "context": {**SEGMENT_CONTEXT, "library": {"name": "RudderLabs JavaScript SDK", "version": "3.0.0"}},
            "integrations": {"All": True}, "originalTimestamp": iso(original), "sentAt": iso(client_now),
        }],
        "sentAt": iso(client_now),
    }


async def test_segment_sdk_batch_with_basic_auth_and_extra_fields(client: httpx.AsyncClient, engine: Engine,
                                                                   clock: ManualClock) -> None:
    at = clock.now() - dt.timedelta(minutes=3)
    body = {
        "batch": [
            {"type": "identify", "userId": "u1", "traits": {"email": "nok@example.com", "plan": "gold"},
             "context": SEGMENT_CONTEXT, "integrations": {"All": True, "Mixpanel": False},
             "_metadata": {"nodeVersion": "20.11.0", "jsRuntime": "node"}, "timestamp": iso(at),
             "messageId": "node-1", "sentAt": iso(clock.now())},
            {"type": "track", "userId": "u1", "event": "add_to_cart", "properties": {"listing_id": "L1"},
             "context": SEGMENT_CONTEXT, "integrations": {}, "timestamp": iso(at), "messageId": "node-2",
             "_metadata": {"nodeVersion": "20.11.0"}, "options": None, "version": 2},
        ],
        "sentAt": iso(clock.now()),
        "context": {"library": {"name": "analytics-node"}},
    }
    response = await client.post("/v1/batch", json=body, headers=basic(WRITE_KEY))
    assert_ingest(response, accepted=2)
    rows = stored_rows(engine, "u1")
    assert [r["name"] for r in rows] == ["identify", "add_to_cart"]
    extra = orjson.loads(rows[1]["extra"])
    assert extra["context"] == SEGMENT_CONTEXT and extra["_metadata"] == {"nodeVersion": "20.11.0"}
    assert extra["version"] == 2
    user = (await client.get("/v1/users/u1", headers=ADMIN)).json()
    assert user["traits"] == {"email": "nok@example.com", "plan": "gold"}


async def test_rudderstack_gzip_batch_is_accepted(client: httpx.AsyncClient, engine: Engine,
                                                  clock: ManualClock) -> None:
    body = rudderstack_batch(clock, client_ahead=dt.timedelta(0), sent_after=dt.timedelta(minutes=2))
    headers = {**basic(WRITE_KEY), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    assert_ingest(await client.post("/v1/batch", content=gzipped(body), headers=headers), accepted=1)
    rows = stored_rows(engine, "u1")
    assert [from_us(r["ts_us"]) for r in rows] == [clock.now() - dt.timedelta(minutes=2)]
    assert orjson.loads(rows[0]["extra"])["rudderId"] == "r-1"
    # The SDK retries the same batch after a timeout: nothing changes.
    assert_ingest(await client.post("/v1/batch", content=gzipped(body), headers=headers), accepted=0, duplicates=1)


async def test_original_timestamp_is_corrected_by_the_sent_at_skew(client: httpx.AsyncClient, engine: Engine,
                                                                   clock: ManualClock,
                                                                   subtests: pytest.Subtests) -> None:
    """No ``timestamp``: the event time is receivedAt - (sentAt - originalTimestamp), whatever the client's clock."""
    for n, client_ahead in enumerate((dt.timedelta(hours=3), dt.timedelta(hours=-7), dt.timedelta(days=400))):
        with subtests.test(client_ahead=client_ahead):
            body = rudderstack_batch(clock, client_ahead=client_ahead, sent_after=dt.timedelta(minutes=10 + n))
            body["batch"][0]["messageId"] = f"skew-{n}"
            assert_ingest(await client.post("/v1/batch", json=body, headers=basic(WRITE_KEY)), accepted=1)
            stored = from_us(stored_rows(engine, "u1")[0]["ts_us"])  # the oldest is the newest call's
            assert stored == clock.now() - dt.timedelta(minutes=10 + n)


async def test_batch_level_sent_at_is_used_when_the_item_has_none(client: httpx.AsyncClient, engine: Engine,
                                                                  clock: ManualClock) -> None:
    client_now = clock.now() + dt.timedelta(hours=1)
    body = {"sentAt": iso(client_now), "batch": [
        {"type": "track", "userId": "u1", "event": "x", "originalTimestamp": iso(client_now - dt.timedelta(hours=2))},
    ]}
    assert_ingest(await client.post("/v1/batch", json=body, headers=WRITE), accepted=1)
    assert [from_us(r["ts_us"]) for r in stored_rows(engine, "u1")] == [clock.now() - dt.timedelta(hours=2)]


async def test_timestamps_as_sdks_write_them(client: httpx.AsyncClient, engine: Engine,
                                             subtests: pytest.Subtests) -> None:
    for n, (sent, stored) in enumerate([
        ("2026-01-05T01:00:00.123456789Z", "2026-01-05T01:00:00.123456+00:00"),   # Go's RFC3339Nano
        ("2026-01-05T08:01:00.123+0700", "2026-01-05T01:01:00.123000+00:00"),     # Java: offset without a colon
        ("2026-01-05T01:02:00.123Z", "2026-01-05T01:02:00.123000+00:00"),         # JavaScript's toISOString
        ("2026-01-05 01:03:00", "2026-01-05T01:03:00+00:00"),                      # no offset: UTC
    ]):
        with subtests.test(sent=sent):
            body = {"userId": "u1", "event": "x", "timestamp": sent}
            assert_ingest(await client.post("/v1/track", json=body, headers=WRITE), accepted=1)
            assert from_us(stored_rows(engine, "u1")[n]["ts_us"]).isoformat() == stored


async def test_bad_sent_at_rejects_only_that_item(client: httpx.AsyncClient) -> None:
    body = {"batch": [
        {"type": "track", "userId": "u1", "event": "x", "originalTimestamp": "2026-01-05T01:00:00Z", "sentAt": 5},
        {"type": "track", "userId": "u1", "event": "y", "originalTimestamp": "soon"},
        {"type": "track", "userId": "u1", "event": "z", "sentAt": "whenever"},  # unused here, yet still a time
        {"type": "track", "userId": "u1", "event": "ok", "sentAt": "2026-01-05T02:00:00Z"},
    ]}
    rejected = assert_ingest(await client.post("/v1/batch", json=body, headers=WRITE), accepted=1,
                             rejected=[0, 1, 2])
    assert "sentAt" in rejected[0]["error"] and "originalTimestamp" in rejected[1]["error"]
    assert "sentAt" in rejected[2]["error"]


async def test_page_screen_alias_and_group_items_are_accepted_and_stored(client: httpx.AsyncClient,
                                                                         engine: Engine) -> None:
    body = {"batch": [
        {"type": "page", "userId": "u1", "name": "Home", "properties": {"path": "/", "title": "Kaidee"}},
        {"type": "screen", "userId": "u1", "name": "ListingDetail", "properties": {"listing_id": "L1"}},
        {"type": "group", "userId": "u1", "groupId": "shop-42", "traits": {"name": "Nok's shop", "size": 3}},
        {"type": "alias", "userId": "u1", "previousId": "old-anon-7"},
    ]}
    assert_ingest(await client.post("/v1/batch", json=body, headers=basic(WRITE_KEY)), accepted=4)
    rows = {r["type"]: r for r in stored_rows(engine, "u1")}
    assert set(rows) == {"page", "screen", "group", "alias"}
    assert orjson.loads(rows["page"]["payload"]) == {"path": "/", "title": "Kaidee"}
    assert orjson.loads(rows["page"]["extra"])["name"] == "Home"
    assert orjson.loads(rows["screen"]["extra"])["name"] == "ListingDetail"
    assert orjson.loads(rows["group"]["extra"])["groupId"] == "shop-42"
    assert orjson.loads(rows["group"]["payload"]) == {"name": "Nok's shop", "size": 3}
    assert orjson.loads(rows["alias"]["extra"])["previousId"] == "old-anon-7"
    for route, call in (("/v1/page", {"userId": "u2", "name": "Cart"}), ("/v1/screen", {"anonymousId": "a2"}),
                        ("/v1/group", {"userId": "u2", "groupId": "g"}),
                        ("/v1/alias", {"userId": "u2", "previousId": "a3"})):
        assert_ingest(await client.post(route, json=call, headers=WRITE), accepted=1)


async def test_bad_alias_and_group_items_are_rejected_alone(client: httpx.AsyncClient) -> None:
    body = {"batch": [
        {"type": "alias", "userId": "u1"},
        {"type": "alias", "anonymousId": "a1", "previousId": "p"},
        {"type": "group", "userId": "u1", "groupId": ["g"]},
        {"type": "page", "userId": "u1", "name": {"x": 1}},
        {"type": "page", "userId": "u1"},
    ]}
    assert_ingest(await client.post("/v1/batch", json=body, headers=WRITE), accepted=1, rejected=[0, 1, 2, 3])


async def test_anonymous_history_is_kept_then_merged_on_identify(client: httpx.AsyncClient, engine: Engine) -> None:
    anon = {"batch": [
        {"type": "track", "anonymousId": "anon-9", "event": "item_viewed", "properties": {"listing_id": "L1"}},
        {"type": "page", "anonymousId": "anon-9", "name": "home"},
        {"type": "identify", "anonymousId": "anon-9", "traits": {"language": "en"}},
    ]}
    assert_ingest(await client.post("/v1/batch", json=anon, headers=WRITE), accepted=3)
    assert (await client.get("/v1/users/u7", headers=ADMIN)).status_code == 404
    assert (await client.get("/v1/users/anon:anon-9", headers=ADMIN)).status_code == 404
    identify = {"userId": "u7", "anonymousId": "anon-9", "traits": {"name": "Nok"}}
    assert_ingest(await client.post("/v1/identify", json=identify, headers=WRITE), accepted=1)
    later = {"anonymousId": "anon-9", "event": "app_opened"}
    assert_ingest(await client.post("/v1/track", json=later, headers=WRITE), accepted=1)
    assert sorted(r["name"] for r in stored_rows(engine, "u7")) == [
        "app_opened", "identify", "identify", "item_viewed", "page"]
    assert stored_rows(engine, "anon:anon-9") == []
    user = (await client.get("/v1/users/u7", headers=ADMIN)).json()
    assert user["traits"] == {"name": "Nok", "language": "en"}


async def test_a_user_id_in_the_anonymous_namespace_is_refused(client: httpx.AsyncClient, engine: Engine) -> None:
    """``anon:<id>`` is where anonymous visitors live; a userId there would be folded away on the next merge."""
    assert_ingest(await client.post("/v1/track", json={"anonymousId": "v1", "event": "x"}, headers=WRITE), 1)
    response = await client.post("/v1/track", json={"userId": "anon:v1", "event": "y"}, headers=WRITE)
    assert "anon:" in assert_error(response, 400, "invalid_call")["message"]
    assert_ingest(await client.post("/v1/identify", json={"userId": "u1", "anonymousId": "v1"}, headers=WRITE), 1)
    assert sorted(r["name"] for r in stored_rows(engine, "u1")) == ["identify", "x"]


# -- encodings -------------------------------------------------------------------------------------------------------


async def test_gzip_bodies_are_accepted_on_every_ingestion_route(client: httpx.AsyncClient, engine: Engine,
                                                                  subtests: pytest.Subtests) -> None:
    for encoding in ("gzip", "x-gzip", "GZIP"):
        with subtests.test(encoding=encoding):
            headers = {**WRITE, "Content-Encoding": encoding}
            batch = {"batch": [{"type": "track", "userId": "u1", "event": "x"}]}
            assert_ingest(await client.post("/v1/batch", content=gzipped(batch), headers=headers), 1)
            track = gzipped({"userId": "u1", "event": "y"})
            assert_ingest(await client.post("/v1/track", content=track, headers=headers), 1)
            assert_ingest(await client.post("/v1/identify", content=gzipped({"userId": "u1"}), headers=headers), 1)
    assert event_count(engine) == 9


async def test_deflate_bodies_are_accepted(client: httpx.AsyncClient) -> None:
    body = zlib.compress(orjson.dumps({"batch": [{"type": "track", "userId": "u1", "event": "x"}]}))
    assert_ingest(await client.post("/v1/batch", content=body, headers={**WRITE, "Content-Encoding": "deflate"}), 1)


async def test_a_broken_gzip_body_is_400_and_stores_nothing(client: httpx.AsyncClient, engine: Engine,
                                                            subtests: pytest.Subtests) -> None:
    for content in (
        b'{"batch": []}',                                         # says gzip, is not
        b"\x1f\x8b\x08\x00garbage-after-the-magic",               # gzip magic, then garbage
        gzip.compress(b'{"batch": [{"type": "track"}]}')[:-12],  # cut short in transit
        gzip.compress(b'{"batch": [{"type": "track", "userId": "u1", "event": "x"}]}')[:-8],  # no trailer
        gzip.compress(b"\xff\xfe not json"),                      # valid gzip around a body that is not JSON
        gzip.compress(b""),                                       # valid gzip around nothing
    ):
        with subtests.test(content=content):
            response = await client.post("/v1/batch", content=content, headers={**WRITE, "Content-Encoding": "gzip"})
            assert_error(response, 400)
    assert event_count(engine) == 0


async def test_a_gzip_bomb_is_413(client: httpx.AsyncClient, engine: Engine) -> None:
    engine.settings.max_body_bytes = 100_000
    padded = b'{"batch": [], "pad": "' + b"a" * 1_000_000 + b'"}'
    bomb = gzip.compress(padded)
    assert len(bomb) < 100_000
    response = await client.post("/v1/batch", content=bomb, headers={**WRITE, "Content-Encoding": "gzip"})
    assert_error(response, 413, "payload_too_large")


async def test_an_unsupported_content_encoding_is_415(client: httpx.AsyncClient, subtests: pytest.Subtests) -> None:
    for encoding in ("br", "compress", "zstd", "gzip, gzip", "rot13"):
        with subtests.test(encoding=encoding):
            response = await client.post("/v1/batch", content=b'{"batch": []}',
                                         headers={**WRITE, "Content-Encoding": encoding})
            assert "gzip" in assert_error(response, 415, "unsupported_media_type")["message"]


async def test_the_content_type_is_not_required_to_be_json(client: httpx.AsyncClient) -> None:
    """Some SDKs send text/plain (to dodge CORS preflights); the body is read as JSON regardless."""
    body = orjson.dumps({"batch": [{"type": "track", "userId": "u1", "event": "x"}]})
    assert_ingest(await client.post("/v1/batch", content=body, headers={**WRITE, "Content-Type": "text/plain"}), 1)

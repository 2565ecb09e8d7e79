"""Browser and mobile SDKs as they really send (CONTRACT.md 9): analytics.js 2.0's short routes with ``writeKey``
in a ``text/plain`` body, RudderStack's identify traits in ``context.traits``, CORS from ``GROWTH_CORS_ORIGINS``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from growthengine.engine import Engine
from tests.unit.api_client import (
    ADMIN,
    ADMIN_KEY,
    WRITE,
    WRITE_KEY,
    api_client,
    assert_error,
    assert_ingest,
    event_count,
    stored_rows,
)

pytestmark = pytest.mark.anyio

SHOP = "https://shop.example"
PLAIN = {"Content-Type": "text/plain"}  # analytics.js: a "simple" request, so the browser sends no preflight


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    engine.settings.cors_origins = [SHOP]
    async with api_client(engine) as c:
        yield c


def ajs(call_type: str, **fields: Any) -> bytes:
    """A call as analytics.js 2.0 posts it: the write key in the body, among its own fields."""
    body = {"type": call_type, "anonymousId": "a-1", "writeKey": WRITE_KEY, "messageId": f"ajs-next-{call_type}",
            "context": {"library": {"name": "analytics.js", "version": "next-1.70.0"}, "page": {"path": "/"}},
            "integrations": {}, "sentAt": "2026-01-05T02:00:00.000Z", "_metadata": {"bundled": ["Segment.io"]},
            **fields}
    return orjson.dumps(body)


@pytest.mark.parametrize(("route", "call_type", "fields"), [
    ("/v1/i", "identify", {"userId": "u1", "traits": {"email": "nok@example.com"}}),
    ("/v1/t", "track", {"event": "item_viewed", "properties": {"listing_id": "L1"}}),
    ("/v1/p", "page", {"name": "Home", "properties": {"path": "/"}}),
    ("/v1/s", "screen", {"name": "Home"}),
    ("/v1/g", "group", {"groupId": "g1", "traits": {"name": "Shop"}}),
    ("/v1/a", "alias", {"userId": "u1", "previousId": "a-1"}),
])
async def test_short_routes_take_text_plain_bodies_with_the_write_key_inside(
    client: httpx.AsyncClient, engine: Engine, route: str, call_type: str, fields: dict[str, Any]
) -> None:
    response = await client.post(route, content=ajs(call_type, **fields), headers={**PLAIN, "Origin": SHOP})
    assert_ingest(response, accepted=1)
    assert response.headers["access-control-allow-origin"] == SHOP
    (row,) = stored_rows(engine)
    assert row["type"] == call_type
    assert "writeKey" not in orjson.loads(row["extra"])  # a credential is never stored with the event


async def test_the_short_batch_route_takes_the_write_key_of_the_batch_or_of_its_calls(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    calls = [orjson.loads(ajs("track", event="app_opened", messageId=f"m{i}")) for i in range(2)]
    body = {"batch": calls, "sentAt": "2026-01-05T02:00:00.000Z", "writeKey": WRITE_KEY}
    assert_ingest(await client.post("/v1/b", content=orjson.dumps(body), headers=PLAIN), accepted=2)
    del body["writeKey"]  # older analytics.js: only each call carries it
    assert_ingest(await client.post("/v1/b", content=orjson.dumps(body), headers=PLAIN), accepted=0, duplicates=2)
    assert all("writeKey" not in orjson.loads(r["extra"]) for r in stored_rows(engine))


async def test_a_write_key_in_the_body_is_checked_like_one_in_the_header(client: httpx.AsyncClient,
                                                                         engine: Engine) -> None:
    unknown = orjson.dumps({"type": "track", "userId": "u1", "event": "x", "writeKey": "not-a-key"})
    assert_error(await client.post("/v1/t", content=unknown, headers=PLAIN), 401, "unauthorized")
    no_key = orjson.dumps({"userId": "u1", "event": "x"})
    assert_error(await client.post("/v1/track", content=no_key, headers=PLAIN), 401, "unauthorized")
    assert_error(await client.post("/v1/track", content=b"{not json", headers=PLAIN), 401, "unauthorized")
    # A header key wins over the body's; an admin key works in the body as in the header.
    header_wins = orjson.dumps({"userId": "u1", "event": "x", "writeKey": "not-a-key"})
    assert_ingest(await client.post("/v1/track", content=header_wins, headers=WRITE), accepted=1)
    admin_in_body = orjson.dumps({"userId": "u1", "event": "y", "writeKey": ADMIN_KEY})
    assert_ingest(await client.post("/v1/track", content=admin_in_body, headers=PLAIN), accepted=1)
    assert event_count(engine) == 2


async def test_identify_traits_in_context_traits_are_merged(client: httpx.AsyncClient) -> None:
    """RudderStack's SDKs send identify traits in ``context.traits``; top-level traits win where both are set."""
    call = {"type": "identify", "userId": "u1", "anonymousId": "a-1",
            "context": {"traits": {"email": "nok@example.com", "phone": "081-234-5678", "name": "Old name",
                                   "consent": {"push": True}},
                        "library": {"name": "RudderLabs JavaScript SDK", "version": "3.0.0"}},
            "traits": {"name": "Nok"}}
    assert_ingest(await client.post("/v1/batch", json={"batch": [call]}, headers=WRITE), accepted=1)
    user = (await client.get("/v1/users/u1", headers=ADMIN)).json()
    assert user["traits"] == {"email": "nok@example.com", "phone": "+66812345678", "name": "Nok",
                              "consent": {"push": True}}


async def test_context_traits_of_a_track_call_change_no_profile(client: httpx.AsyncClient) -> None:
    call = {"type": "track", "userId": "u1", "event": "app_opened", "context": {"traits": {"email": "x@y.co"}}}
    assert_ingest(await client.post("/v1/track", json=call, headers=WRITE), accepted=1)
    assert (await client.get("/v1/users/u1", headers=ADMIN)).json()["traits"] == {}


async def test_a_browser_preflight_from_an_allowed_origin_is_answered(client: httpx.AsyncClient) -> None:
    preflight = {"Origin": SHOP, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type, anonymousid"}
    response = await client.options("/v1/batch", headers=preflight)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == SHOP
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers  # no cookies across origins
    answer = await client.post("/v1/track", json={"userId": "u1", "event": "x"}, headers={**WRITE, "Origin": SHOP})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == SHOP
    refused = await client.post("/v1/track", json={"userId": "u1"}, headers={"Origin": SHOP})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == SHOP  # readable


async def test_a_preflight_from_another_origin_is_refused_clearly(client: httpx.AsyncClient) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    response = await client.options("/v1/batch", headers=preflight)
    error = assert_error(response, 403, "cors_refused")
    assert "GROWTH_CORS_ORIGINS" in error["message"]
    assert "access-control-allow-origin" not in response.headers
    answer = await client.post("/v1/track", json={"userId": "u1", "event": "x"},
                               headers={**WRITE, "Origin": "https://evil.example"})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


async def test_every_origin_when_configured_with_a_star(engine: Engine) -> None:
    engine.settings.cors_origins = ["*"]
    async with api_client(engine) as client:
        preflight = {"Origin": "https://any.example", "Access-Control-Request-Method": "POST"}
        response = await client.options("/v1/i", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"

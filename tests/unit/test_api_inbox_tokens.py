"""The in-app inbox with app tokens (CONTRACT.md 3.3): the admin key opens every inbox, ``X-Growth-User-Token``
opens its own user's only, a write key (which ships inside apps) opens none."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import AsyncIterator

import httpx
import pytest

from growthengine.api.user_tokens import user_token
from growthengine.clock import ManualClock
from growthengine.engine import Engine
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error, assert_ingest

pytestmark = pytest.mark.anyio

SECRET = "app-backend-secret"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def token(user_id: str, secret: str = SECRET) -> dict[str, str]:
    """What the app's backend computes: hex HMAC-SHA256 of the user id."""
    return {"X-Growth-User-Token": hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()}


@pytest.fixture
async def client(engine: Engine, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    """Two sellers who registered three days ago: each has the coach's in-app message in the inbox."""
    engine.settings.user_token_secret = SECRET
    async with api_client(engine) as c:
        for user in ("s1", "s2"):
            identify = {"userId": user, "traits": {"is_seller": True, "email": f"{user}@example.test",
                                                   "consent": {"in_app": True, "email": True}}}
            assert_ingest(await c.post("/v1/identify", json=identify, headers=WRITE), accepted=1)
            track = {"userId": user, "event": "seller_registered"}
            assert_ingest(await c.post("/v1/track", json=track, headers=WRITE), accepted=1)
        engine.advance(clock.now() + dt.timedelta(days=3))
        yield c


async def test_the_users_own_token_opens_the_inbox_and_marks_read(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/users/s1/inbox", headers=token("s1"))
    assert response.status_code == 200, response.text
    [message] = response.json()["messages"]
    assert message["userId"] == "s1" and message["channel"] == "in_app"
    read = await client.post(f"/v1/users/s1/inbox/{message['id']}/read", headers=token("s1"))
    assert read.status_code == 200 and read.json()["status"] == "opened"


async def test_the_admin_key_opens_every_inbox(client: httpx.AsyncClient) -> None:
    for user in ("s1", "s2"):
        response = await client.get(f"/v1/users/{user}/inbox", headers=ADMIN)
        assert response.status_code == 200 and len(response.json()["messages"]) == 1


async def test_another_users_token_is_refused(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/users/s2/inbox", headers=token("s1")), 403, "forbidden")
    theirs = (await client.get("/v1/users/s2/inbox", headers=ADMIN)).json()["messages"][0]
    refused = await client.post(f"/v1/users/s2/inbox/{theirs['id']}/read", headers=token("s1"))
    assert_error(refused, 403, "forbidden")
    # Nor may a user's token read another user's message by naming it under its own id.
    assert_error(await client.post(f"/v1/users/s1/inbox/{theirs['id']}/read", headers=token("s1")), 404)
    assert (await client.get("/v1/users/s2/inbox", headers=ADMIN)).json()["messages"][0]["status"] == "delivered"


async def test_a_write_key_opens_no_inbox(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/users/s1/inbox", headers=WRITE), 403, "forbidden")
    assert_error(await client.post("/v1/users/s1/inbox/m1/read", headers=WRITE), 403, "forbidden")
    assert_error(await client.get("/v1/users/s1/inbox"), 401, "unauthorized")


async def test_a_wrong_or_malformed_token_is_refused(client: httpx.AsyncClient) -> None:
    for bad in (token("s1", secret="another-secret"), {"X-Growth-User-Token": "nope"},
                {"X-Growth-User-Token": ""}, {"X-Growth-User-Token": "é".encode("latin-1") * 64}):
        assert_error(await client.get("/v1/users/s1/inbox", headers={**bad, **ADMIN}), 403, "forbidden")
    upper = {"X-Growth-User-Token": token("s1")["X-Growth-User-Token"].upper()}  # hex in either case
    assert (await client.get("/v1/users/s1/inbox", headers=upper)).status_code == 200


async def test_without_a_secret_tokens_open_nothing(client: httpx.AsyncClient, engine: Engine) -> None:
    engine.settings.user_token_secret = None
    error = assert_error(await client.get("/v1/users/s1/inbox", headers=token("s1")), 401, "unauthorized")
    assert "GROWTH_USER_TOKEN_SECRET" in error["message"]
    assert (await client.get("/v1/users/s1/inbox", headers=ADMIN)).status_code == 200


def test_the_token_is_hex_hmac_sha256_of_the_user_id() -> None:
    assert user_token("k", "u1") == hmac.new(b"k", b"u1", hashlib.sha256).hexdigest()
    assert len(user_token("k", "ผู้ใช้")) == 64

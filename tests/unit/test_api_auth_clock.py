"""Keys (CONTRACT.md 3), the error shape on every failure, and the test clock (CONTRACT.md 3.4)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock, RealClock, to_us
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.conftest import make_engine
from tests.unit.api_client import (
    ADMIN,
    ADMIN_KEY,
    WRITE,
    WRITE_KEY,
    api_client,
    assert_error,
    assert_ingest,
    basic,
)

pytestmark = pytest.mark.anyio

TRACK = {"userId": "u1", "event": "app_opened"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as c:
        yield c


# -- auth ------------------------------------------------------------------------------------------------------------

INGEST_ROUTES = ["/v1/identify", "/v1/track", "/v1/batch", "/v1/page", "/v1/screen", "/v1/alias", "/v1/group"]


BAD_AUTH: list[dict[str, str]] = [
    {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
    {"Authorization": "Bearer nope"}, {"Authorization": "Token write-key"}, {"Authorization": "write-key"},
    {"Authorization": "Basic !!!not-base64!!!"}, {"Authorization": "Basic " + base64.b64encode(b":").decode()},
    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:").decode()}, {"X-Api-Key": WRITE_KEY},
    {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()},
]


async def test_a_missing_or_unknown_key_is_401(client: httpx.AsyncClient, engine: Engine,
                                               subtests: pytest.Subtests) -> None:
    for headers in BAD_AUTH:
        for route in INGEST_ROUTES:
            with subtests.test(headers=headers, route=route):
                body = {"batch": [{"type": "track", **TRACK}], **TRACK}
                response = await client.post(route, json=body, headers=headers)
                assert_error(response, 401, "unauthorized")
                assert "Bearer" in response.headers["www-authenticate"]
    with engine.store.transaction() as tx:
        assert tx.events.count() == 0


async def test_401_comes_before_reading_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/batch", content=b"\x1f\x8bnot gzip", headers={"Content-Encoding": "gzip"})
    assert_error(response, 401, "unauthorized")


async def test_write_and_admin_keys_may_ingest(client: httpx.AsyncClient, subtests: pytest.Subtests) -> None:
    for auth in (WRITE, basic(WRITE_KEY), basic(WRITE_KEY, "ignored-password"),
                 {"Authorization": f"bearer {WRITE_KEY}"}, {"Authorization": f"Bearer  {WRITE_KEY} "}, ADMIN,
                 basic(ADMIN_KEY)):
        with subtests.test(auth=auth):
            assert_ingest(await client.post("/v1/track", json=TRACK, headers=auth), accepted=1)
            batch = {"batch": [{"type": "track", **TRACK}]}
            assert_ingest(await client.post("/v1/batch", json=batch, headers=auth), accepted=1)


ADMIN_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/users/u1", None), ("GET", "/v1/clock", None), ("POST", "/v1/clock/advance", {"by": "PT1H"}),
]


async def test_a_write_key_on_an_admin_route_is_403_and_no_key_is_401(client: httpx.AsyncClient, engine: Engine,
                                                                     subtests: pytest.Subtests) -> None:
    assert_ingest(await client.post("/v1/identify", json={"userId": "u1"}, headers=WRITE), accepted=1)
    before = engine.clock.now()
    for method, route, body in ADMIN_ROUTES:
        for auth in (WRITE, basic(WRITE_KEY)):
            with subtests.test(route=route, auth=auth):
                assert_error(await client.request(method, route, json=body, headers=auth), 403, "forbidden")
        with subtests.test(route=route, auth=None):
            assert_error(await client.request(method, route, json=body), 401, "unauthorized")
    assert engine.clock.now() == before


async def test_the_admin_key_works_everywhere(client: httpx.AsyncClient) -> None:
    assert_ingest(await client.post("/v1/identify", json={"userId": "u1"}, headers=ADMIN), accepted=1)
    assert (await client.get("/v1/users/u1", headers=ADMIN)).status_code == 200
    assert (await client.get("/v1/users/u1", headers=basic(ADMIN_KEY))).status_code == 200
    assert (await client.get("/v1/clock", headers=ADMIN)).status_code == 200
    assert (await client.post("/v1/clock/advance", json={"by": "PT1M"}, headers=ADMIN)).status_code == 200


# -- the error shape everywhere --------------------------------------------------------------------------------------


async def test_unknown_routes_and_methods_answer_in_the_error_shape(client: httpx.AsyncClient,
                                                                   subtests: pytest.Subtests) -> None:
    for method, route in (("GET", "/nope"), ("GET", "/v1/nope"), ("POST", "/v2/batch"), ("GET", "/v1/users/"),
                          ("DELETE", "/v1/nothing/x")):
        with subtests.test(method=method, route=route):
            assert_error(await client.request(method, route, headers=ADMIN), 404, "not_found")
    for method, route in (("GET", "/v1/batch"), ("PUT", "/v1/track"), ("PUT", "/v1/users/u1"),
                          ("POST", "/v1/clock")):
        with subtests.test(method=method, route=route):
            assert_error(await client.request(method, route, headers=ADMIN), 405, "method_not_allowed")


async def test_an_unknown_user_is_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    assert "nobody" in assert_error(await client.get("/v1/users/nobody", headers=ADMIN), 404, "not_found")["message"]


async def test_an_overlong_user_id_in_the_path_is_400(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.get("/v1/users/" + "x" * 301, headers=ADMIN), 400, "invalid_request")
    assert error["details"] and "userId" in error["details"][0]["path"]


async def test_user_ids_with_odd_characters_round_trip(client: httpx.AsyncClient) -> None:
    for user_id in ("สมชาย", "a b", "a%2Fb", "😀", "x:y", "a/b"):
        assert_ingest(await client.post("/v1/identify", json={"userId": user_id}, headers=WRITE), 1)
    response = await client.get("/v1/users/" + httpx.URL("สมชาย").raw_path.decode(), headers=ADMIN)
    assert response.json()["userId"] == "สมชาย"
    assert (await client.get("/v1/users/a%20b", headers=ADMIN)).json()["userId"] == "a b"


async def test_the_openapi_document_is_served_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/v1/identify", "/v1/track", "/v1/batch", "/v1/users/{userId}", "/v1/clock",
            "/v1/clock/advance"} <= set(paths)


# -- the test clock --------------------------------------------------------------------------------------------------


async def test_get_clock(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/clock", headers=ADMIN)
    assert response.json() == {"now": "2026-01-05T02:00:00Z", "mode": "manual"}


async def test_advance_to_an_instant_and_by_a_duration(client: httpx.AsyncClient, clock: ManualClock) -> None:
    async def advance(body: dict[str, str]) -> str:
        response = await client.post("/v1/clock/advance", json=body, headers=ADMIN)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert set(answer) == {"now", "processed"} and isinstance(answer["processed"], int)
        return str(answer["now"])

    assert await advance({"to": "2026-01-05T10:30:00+07:00"}) == "2026-01-05T03:30:00Z"
    assert await advance({"by": "PT1H"}) == "2026-01-05T04:30:00Z"
    assert await advance({"by": "P1DT30M"}) == "2026-01-06T05:00:00Z"
    assert await advance({"to": "2026-01-06T05:00:00Z"}) == "2026-01-06T05:00:00Z"  # standing still is allowed
    assert (await client.get("/v1/clock", headers=ADMIN)).json()["now"] == "2026-01-06T05:00:00Z"
    assert clock.now() == dt.datetime(2026, 1, 6, 5, 0, tzinfo=dt.UTC)


async def test_advance_does_the_work_that_falls_due(client: httpx.AsyncClient, engine: Engine,
                                                    clock: ManualClock) -> None:
    fired: list[dt.datetime] = []

    def handler(tx: Any, timers: Any, due: dt.datetime) -> None:
        fired.extend(clock.now() for _ in timers)

    engine.scheduler.register("probe", handler)
    with engine.store.transaction() as tx:
        tx.timers.schedule("probe", "k1", to_us(clock.now() + dt.timedelta(minutes=30)))
    response = await client.post("/v1/clock/advance", json={"by": "PT1H"}, headers=ADMIN)
    assert response.json()["processed"] >= 1  # the engine's own timers (segment refreshes) may fall due too
    assert fired == [dt.datetime(2026, 1, 5, 2, 30, tzinfo=dt.UTC)]


async def test_ingest_checks_the_future_against_the_advanced_clock(client: httpx.AsyncClient) -> None:
    at = "2026-01-05T12:00:00+07:00"
    body = {"userId": "u1", "event": "x", "timestamp": at}
    assert_error(await client.post("/v1/track", json=body, headers=WRITE), 400, "invalid_call")
    await client.post("/v1/clock/advance", json={"to": at}, headers=ADMIN)
    assert_ingest(await client.post("/v1/track", json=body, headers=WRITE), accepted=1)


BAD_ADVANCES: list[Any] = [
    {}, {"to": "2026-01-06T00:00:00Z", "by": "PT1H"}, {"to": None, "by": None}, [], "PT1H", {"by": ""},
    {"later": "PT1H"},  # not exactly one of to/by
    {"by": "1 hour"}, {"by": "PT"}, {"by": "P"}, {"by": "P1M"}, {"by": "P1Y"}, {"by": "-PT1H"}, {"by": 3600},
    {"by": "PT1H30"}, {"by": "P99999999999999D"}, {"by": "PT99999999999999999999S"}, {"by": "P999999999W"},
    {"by": ["PT1H"]}, {"to": "tomorrow"}, {"to": 1767600000}, {"to": "9999-12-31T23:59:59-05:00"},
    {"to": "2026-02-30T00:00:00Z"}, {"by": "PT1H" * 1000}, {"to": "3000-01-01T00:00:00Z"},
]


async def test_a_bad_advance_is_400_and_leaves_the_clock(client: httpx.AsyncClient, clock: ManualClock,
                                                         subtests: pytest.Subtests) -> None:
    before = clock.now()
    for body in BAD_ADVANCES:
        with subtests.test(body=body):
            assert_error(await client.post("/v1/clock/advance", json=body, headers=ADMIN), 400)
            assert clock.now() == before


async def test_the_clock_never_goes_backwards(client: httpx.AsyncClient, clock: ManualClock) -> None:
    """A well-formed time the clock cannot go to conflicts with where it stands: 409, not a malformed request."""
    response = await client.post("/v1/clock/advance", json={"to": "2026-01-05T08:59:59+07:00"}, headers=ADMIN)
    assert "forward" in assert_error(response, 409, "clock_backwards")["message"]
    too_far = await client.post("/v1/clock/advance", json={"to": "2031-06-01T00:00:00Z"}, headers=ADMIN)
    assert_error(too_far, 409, "advance_too_far")
    assert_error(await client.post("/v1/clock/advance", json={"by": "P2000D"}, headers=ADMIN), 409, "advance_too_far")
    assert clock.now() == dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)


async def test_advance_body_errors(client: httpx.AsyncClient) -> None:
    headers = {**ADMIN, "Content-Type": "application/json"}
    assert_error(await client.post("/v1/clock/advance", content=b"{", headers=headers), 400, "invalid_json")
    assert_error(await client.post("/v1/clock/advance", content=b"", headers=headers), 400, "invalid_json")
    big = b'{"by": "PT1H", "pad": "' + b"a" * 70_000 + b'"}'
    assert_error(await client.post("/v1/clock/advance", content=big, headers=headers), 413)


async def test_the_end_of_the_clock_range_keeps_the_engine_usable(tmp_path: Path) -> None:
    """Near the last instant the engine accepts, requests and timers must not overflow into 5xx.

    (The engine starts there: advancing a clock by centuries would run every hourly refresh on the way.)
    """
    clock = ManualClock(dt.datetime(2999, 12, 31, 22, 0, tzinfo=dt.UTC))
    engine = make_engine(f"sqlite:///{tmp_path / 'end.db'}", clock, tmp_path)
    try:
        async with api_client(engine) as client:
            assert_error(await client.post("/v1/clock/advance", json={"to": "9999-12-31T23:59:00Z"}, headers=ADMIN),
                         400)
            response = await client.post("/v1/clock/advance", json={"to": "2999-12-31T23:59:00+00:00"},
                                         headers=ADMIN)
            assert response.status_code == 200, response.text
            assert_ingest(await client.post("/v1/track", json=TRACK, headers=WRITE), accepted=1)
            body = {**TRACK, "timestamp": "2999-12-31T23:58:00Z", "properties": {"n": 1}}
            assert_ingest(await client.post("/v1/track", json=body, headers=WRITE), accepted=1)
            identify = {"userId": "u1", "traits": {"timezone": "Pacific/Kiritimati"}}
            assert_ingest(await client.post("/v1/identify", json=identify, headers=WRITE), accepted=1)
            assert_ingest(await client.post("/v1/track", json=TRACK, headers=WRITE), accepted=1)
            error = assert_error(await client.post("/v1/clock/advance", json={"by": "PT1H"}, headers=ADMIN), 409)
            assert "2999" in error["message"]
            assert (await client.get("/v1/users/u1", headers=ADMIN)).status_code == 200
    finally:
        engine.close()


async def test_advance_under_the_real_clock_is_409(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'real.db'}", data_dir=tmp_path / "data")
    engine = build_engine(settings, clock=RealClock())
    try:
        async with api_client(engine) as client:
            response = await client.post("/v1/clock/advance", json={"by": "PT1H"}, headers=ADMIN)
            assert_error(response, 409, "clock_not_manual")
            clock = (await client.get("/v1/clock", headers=ADMIN)).json()
            assert clock["mode"] == "real"
            assert dt.datetime.fromisoformat(clock["now"]).tzinfo is not None
    finally:
        engine.close()

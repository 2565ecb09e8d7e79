"""No input, however malformed, gets a 5xx, and nothing already accepted is lost (CONTRACT.md 3).

Two fuzzers: schemathesis, driven by our own ``/openapi.json`` (valid and invalid requests for every operation),
and hypothesis throwing arbitrary JSON at ``/v1/batch`` as items and as whole bodies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.schemas import OpenApiSchema

from growthengine.api.app import create_app
from growthengine.api.auth import KeyRing
from growthengine.clock import ManualClock
from growthengine.domain.calls import CALL_TYPES
from growthengine.engine import Engine
from tests.conftest import make_engine
from tests.unit.api_client import ADMIN, ADMIN_KEY, WRITE, WRITE_KEY, api_client, event_count

# -- schemathesis against our own OpenAPI document ------------------------------------------------------------------


# Per operation and generation mode. Bounded so that the whole schema (a dozen operations and growing) fuzzes in
# well under a minute; raise it locally for a deeper run.
EXAMPLES_PER_OPERATION = 30
EXPECTED_OPERATIONS = {"POST /v1/identify", "POST /v1/track", "POST /v1/batch", "GET /v1/users/{userId}",
                       "GET /v1/clock", "POST /v1/clock/advance", "GET /v1/users/{userId}/export",
                       "GET /v1/users/{userId}/inbox", "POST /v1/users/{userId}/inbox/{messageId}/read",
                       "GET /v1/messages", "GET /v1/kpis", "GET /v1/users/{userId}/send-time",
                       "DELETE /v1/users/{userId}",
                       "PUT /v1/config/segments/{key}", "PUT /v1/config/flows/{key}",
                       "DELETE /v1/config/templates/{key}", "GET /v1/config/history", "GET /v1/flows",
                       "POST /v1/messages/test", "POST /v1/broadcasts", "GET /v1/broadcasts/{broadcastId}"}
# What the document cannot state answers outside 400: a conflict with the engine's state (409: the test clock
# cannot go back) and a rule between values that are each well formed (422: a KPI report's from after its to).
ACCEPTED_AS_VALID = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
REFUSED_AS_INVALID = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
# The clock at the end of the engine's years: every timestamp the document allows is then in the past, so that
# "more than 5 minutes ahead of the engine's clock" (a rule of the engine's state) never refuses a valid call.
END_OF_TIME = dt.datetime(2999, 12, 31, 23, 59, tzinfo=dt.UTC)


def load_schema(engine: Engine) -> OpenApiSchema:
    app = create_app(engine, KeyRing.from_keys([ADMIN_KEY], [WRITE_KEY]), run_workers=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.update(headers=ADMIN)
    schema.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED_AS_VALID
    schema.config.checks.negative_data_rejection.expected_statuses = REFUSED_AS_INVALID
    return schema


@pytest.fixture
def late_engine(sqlite_url: str, tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(sqlite_url, ManualClock(END_OF_TIME), tmp_path)
    yield engine
    engine.close()


# ``schemathesis.pytest.from_fixture(...).parametrize()`` fails under pytest 9 (it sets ``Function._nodeid``, which
# pytest 9 removed), and a module-level schema would need an engine at import time. So each operation's strategy is
# driven by hypothesis directly; a failure names the operation and the generated request.
@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_the_api_does_what_its_openapi_document_says(late_engine: Engine, mode: schemathesis.GenerationMode) -> None:
    """Every check schemathesis has: no 5xx, requests the document allows are accepted, requests it forbids are
    refused, and every answer (status, content type, headers, body) is one the document gives."""
    schema = load_schema(late_engine)
    results = list(schema.get_all_operations())
    assert [r.err() for r in results if not isinstance(r, Ok)] == []  # every operation's schema is usable
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert EXPECTED_OPERATIONS <= {op.label for op in operations}
    for operation in operations:

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=ADMIN)

        try:
            call()
        except Unsatisfiable:
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label  # nothing to get wrong (no input)
        except (Exception, BaseExceptionGroup) as exc:
            raise AssertionError(f"{operation.label} ({mode.value}): {exc}") from exc


@pytest.mark.anyio
async def test_the_issues_examples(engine: Engine) -> None:
    """The mismatches the issue found: ``{}`` to /v1/identify is refused by the document as by the API,
    ``anonymousId: 0`` is allowed by both."""
    async with api_client(engine) as http:
        document = (await http.get("/openapi.json")).json()
        body = document["paths"]["/v1/identify"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert (await http.post("/v1/identify", json={}, headers=ADMIN)).status_code == 400
        assert {"required": ["userId"], "properties": {"userId": {"not": {"type": "null"}}}} in body["anyOf"]
        assert (await http.post("/v1/identify", json={"anonymousId": 0}, headers=ADMIN)).status_code == 200
        assert body["properties"]["anonymousId"]["anyOf"][1]["type"] == "integer"


@pytest.mark.anyio
async def test_a_query_parameter_given_twice_is_400_and_an_empty_one_is_its_default(engine: Engine) -> None:
    async with api_client(engine) as http:
        twice = await http.get("/v1/kpis?flow=a&flow=b", headers=ADMIN)
        assert twice.status_code == 400 and "'flow'" in twice.json()["error"]["message"]
        assert (await http.get("/v1/messages?limit=1&limit=2", headers=ADMIN)).status_code == 400
        empty = await http.get("/v1/kpis?from=&to=&flow=", headers=ADMIN)
        assert empty.status_code == 200 and empty.json()["flow"] is None


# -- hypothesis: arbitrary JSON at /v1/batch --------------------------------------------------------------------------

_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
_times = st.sampled_from(["2026-01-05T01:59:00Z", "2026-01-05T09:00:00+07:00", "2030-01-01T00:00:00Z",
                          "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "nope", ""])
_ids = st.sampled_from(["u1", "u2", "anon-1", "anon:1", " ", "x" * 300]) | json_values
# Items shaped like calls reach past the first checks into identity merges, traits and time correction.
call_like = st.fixed_dictionaries(
    {"type": st.sampled_from(CALL_TYPES) | json_values},
    optional={
        "userId": _ids, "anonymousId": _ids, "previousId": _ids, "groupId": _ids, "messageId": _ids,
        "event": st.sampled_from(["app_opened", "purchase", "unsubscribed", ""]) | json_values,
        "name": json_values, "properties": json_values,
        "traits": st.fixed_dictionaries({}, optional={
            "email": st.sampled_from(["a@b.co", "bad"]) | json_values,
            "phone": st.sampled_from(["+66812345678", "0812"]) | json_values,
            "timezone": st.sampled_from(["Asia/Bangkok", "America", "Etc", "../x", "UTC"]) | json_values,
            "language": st.sampled_from(["th", "EN", "fr"]) | json_values,
            "consent": st.dictionaries(st.sampled_from(["push", "email", "fax"]), json_values, max_size=3)
            | json_values,
            "is_seller": json_values, "name": json_values,
        }) | json_values,
        "timestamp": _times | json_values, "originalTimestamp": _times | json_values, "sentAt": _times | json_values,
        "context": json_values, "integrations": json_values,
    },
)
batch_items = st.lists(call_like | json_values, max_size=8)

KEEPER = "keeper-\U0001f512"
KEEPER_TRAITS = {"name": "Keeper", "consent": {"push": True}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def seeded(engine: Engine) -> AsyncIterator[tuple[httpx.AsyncClient, Engine]]:
    """A client on an engine that already holds a user the fuzzers must never lose or change."""
    async with api_client(engine) as client:
        seed = {"batch": [{"type": "identify", "userId": KEEPER, "traits": KEEPER_TRAITS, "messageId": "seed-1"},
                          {"type": "track", "userId": KEEPER, "event": "purchase", "messageId": "seed-2"}]}
        response = await client.post("/v1/batch", json=seed, headers=WRITE)
        assert response.json()["accepted"] == 2
        yield client, engine


async def _assert_keeper_intact(client: httpx.AsyncClient, engine: Engine, count_before: int, accepted: int) -> None:
    assert event_count(engine) == count_before + accepted
    response = await client.get(f"/v1/users/{KEEPER}", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["traits"] == KEEPER_TRAITS


def _check_answer(response: httpx.Response, items: list[Any] | None) -> int:
    """200 with a consistent account of every item (when ``items`` is known), or a 4xx in the error shape.

    Returns how many were accepted.
    """
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code != 200:
        assert 400 <= response.status_code < 500
        assert set(body["error"]) == {"code", "message", "details"}
        return 0
    if items is None:
        return int(body["accepted"])
    indexes = [r["index"] for r in body["rejected"]]
    assert indexes == sorted(set(indexes)) and all(0 <= i < len(items) for i in indexes)
    assert body["accepted"] + body["duplicates"] + len(indexes) == len(items)
    return int(body["accepted"])


@pytest.mark.anyio
@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(items=batch_items, sent_at=_times | json_values)
async def test_random_batch_items_are_accepted_or_rejected_alone(
    seeded: tuple[httpx.AsyncClient, Engine], items: list[Any], sent_at: Any
) -> None:
    client, engine = seeded
    before = event_count(engine)
    response = await client.post("/v1/batch", content=orjson.dumps({"batch": items, "sentAt": sent_at}),
                                 headers=WRITE)
    assert response.status_code == 200, response.text
    accepted = _check_answer(response, items)
    await _assert_keeper_intact(client, engine, before, accepted)


@pytest.mark.anyio
@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=json_values | st.fixed_dictionaries({"batch": json_values}), route=st.sampled_from(
    ["/v1/batch", "/v1/identify", "/v1/track", "/v1/page", "/v1/alias", "/v1/clock/advance"]))
async def test_random_json_bodies_never_get_a_5xx(
    seeded: tuple[httpx.AsyncClient, Engine], body: Any, route: str
) -> None:
    client, engine = seeded
    before = event_count(engine)
    response = await client.post(route, content=orjson.dumps(body), headers=ADMIN)
    items = body.get("batch") if isinstance(body, dict) and route == "/v1/batch" else [body]
    items = items if isinstance(items, list) else None
    accepted = 0 if route == "/v1/clock/advance" else _check_answer(response, items)
    await _assert_keeper_intact(client, engine, before, accepted)


@pytest.mark.anyio
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=st.binary(max_size=200), encoding=st.sampled_from(["identity", "gzip", "deflate", "br", ""]))
async def test_random_bytes_never_get_a_5xx(seeded: tuple[httpx.AsyncClient, Engine], content: bytes,
                                            encoding: str) -> None:
    client, engine = seeded
    before = event_count(engine)
    response = await client.post("/v1/batch", content=content, headers={**WRITE, "Content-Encoding": encoding})
    await _assert_keeper_intact(client, engine, before, _check_answer(response, None))

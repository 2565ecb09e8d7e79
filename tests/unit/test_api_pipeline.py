"""``GET /v1/pipeline``: lag per stage. Under the manual clock a request finishes its work before it answers, so
every stage has caught up; the admin key only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from growthengine.engine import Engine
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error, assert_ingest

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as c:
        yield c


async def test_every_stage_has_caught_up_when_a_manual_clock_request_answers(client: httpx.AsyncClient) -> None:
    calls = [{"type": "track", "userId": f"u{n}", "event": "app_opened"} for n in range(50)]
    assert_ingest(await client.post("/v1/batch", json={"batch": calls}, headers=WRITE), accepted=50)
    answer = await client.get("/v1/pipeline", headers=ADMIN)
    assert answer.status_code == 200
    stages = {s["stage"]: s for s in answer.json()["stages"]}
    assert set(stages) == {"segments", "flows", "consent", "engagement", "analytics"}
    assert all(s["behind"] == 0 and s["lagSeconds"] == 0 for s in stages.values())


async def test_a_stage_behind_is_shown_behind(client: httpx.AsyncClient, engine: Engine) -> None:
    # Stored but not yet read by any stage (as on the real clock before a worker's next pass).
    engine.ingestion.ingest([{"type": "track", "userId": f"u{n}", "event": "app_opened"} for n in range(7)])
    stages = (await client.get("/v1/pipeline", headers=ADMIN)).json()["stages"]
    assert {s["stage"]: s["behind"] for s in stages} == dict.fromkeys(
        ["segments", "flows", "consent", "engagement", "analytics"], 7)
    engine.process_pending()
    stages = (await client.get("/v1/pipeline", headers=ADMIN)).json()["stages"]
    assert all(s["behind"] == 0 for s in stages)


async def test_a_write_key_cannot_read_it(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/pipeline", headers=WRITE), 403)

"""Times the engine's own API, CLI and settings take must say where they are (CONTRACT.md 8): a time without a
UTC offset is refused with a clear 400 or one clear CLI line, never read as UTC. Event times from SDKs stay as
Segment reads them (no offset: UTC)."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from growthengine.clock import ManualClock
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.conftest import START
from tests.e2e.serve import clean_env, growth_command
from tests.unit.api_client import ADMIN, WRITE, api_client, assert_error, assert_ingest

NAIVE = "2026-01-05T10:00:00"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(engine) as c:
        yield c


@pytest.mark.anyio
async def test_advancing_the_clock_to_a_time_without_offset_is_400(client: httpx.AsyncClient,
                                                                    clock: ManualClock) -> None:
    error = assert_error(await client.post("/v1/clock/advance", json={"to": NAIVE}, headers=ADMIN), 400,
                         "invalid_time")
    assert "offset" in error["message"] and NAIVE in error["message"]
    assert clock.now() == START
    ok = await client.post("/v1/clock/advance", json={"to": NAIVE + "+07:00"}, headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["now"] == "2026-01-05T03:00:00Z"


@pytest.mark.anyio
async def test_query_times_without_offset_are_400(client: httpx.AsyncClient) -> None:
    assert_ingest(await client.post("/v1/identify", json={"userId": "u1"}, headers=WRITE), accepted=1)
    send_time = await client.get("/v1/users/u1/send-time", params={"after": NAIVE}, headers=ADMIN)
    assert "offset" in assert_error(send_time, 400, "invalid_time")["message"]
    kpis = await client.get("/v1/kpis", params={"from": NAIVE}, headers=ADMIN)
    assert "offset" in assert_error(kpis, 400)["message"]
    assert (await client.get("/v1/kpis", params={"from": "2026-01-05"}, headers=ADMIN)).status_code == 200  # a day


@pytest.mark.anyio
async def test_event_times_from_sdks_without_offset_are_utc(client: httpx.AsyncClient, engine: Engine) -> None:
    call = {"userId": "u1", "event": "app_opened", "timestamp": "2026-01-05T01:00:00"}
    assert_ingest(await client.post("/v1/track", json=call, headers=WRITE), accepted=1)
    assert engine.user_view("u1")["computed"]["last_active"].startswith("2026-01-05T01:00:00")  # type: ignore[index]


def test_settings_refuse_a_clock_start_without_offset() -> None:
    with pytest.raises(ValidationError, match="offset"):
        Settings(clock="manual", clock_start=dt.datetime(2026, 1, 5, 9))


def run_growth(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*growth_command(), *args], cwd=cwd, env={**clean_env(**env), "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("args", "env"), [
    (("serve", "--clock", "manual", "--start", NAIVE), {}),
    (("simulate", "--users", "5", "--days", "0.1", "--start", NAIVE), {}),
])
def test_the_cli_refuses_a_start_without_offset_in_one_line(tmp_path: Path, args: tuple[str, ...],
                                                            env: dict[str, str]) -> None:
    result = run_growth(*args, cwd=tmp_path, **env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "offset" in lines[0], result.stderr
    assert "Traceback" not in result.stderr

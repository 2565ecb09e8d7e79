"""Dashboard sessions (CONTRACT.md 8, 9): kept server side (every process, across restarts), revoked at logout,
``Secure`` over HTTPS, on system time; failed sign-ins limited (429)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from growthengine.api.app import create_app
from growthengine.api.auth import KeyRing
from growthengine.clock import ManualClock
from growthengine.dashboard.session import SESSION_US, DashboardSessions, LoginThrottle
from growthengine.engine import Engine
from tests.conftest import START, make_engine
from tests.unit.api_client import ADMIN_KEY, WRITE_KEY

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def browser(engine: Engine, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, KeyRing.from_keys([ADMIN_KEY], [WRITE_KEY]), run_workers=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        yield client


async def sign_in(client: httpx.AsyncClient, key: str = ADMIN_KEY) -> httpx.Response:
    return await client.post("/dashboard/login", data={"key": key, "next": "/dashboard/segments"})


async def test_a_session_holds_in_another_process_and_ends_at_logout(sqlite_url: str, tmp_path: Path) -> None:
    first = make_engine(sqlite_url, ManualClock(START), tmp_path / "a")
    second = make_engine(sqlite_url, ManualClock(START), tmp_path / "b")  # another process on the same database
    try:
        async with browser(first) as a, browser(second) as b:
            login = await sign_in(a)
            assert login.status_code == 303 and login.headers["location"] == "/dashboard/segments"
            cookie = login.cookies["growth_session"]
            header = login.headers["set-cookie"].lower()
            assert "httponly" in header and "samesite=strict" in header and "secure" not in header  # plain HTTP
            b.cookies.set("growth_session", cookie)
            assert (await b.get("/dashboard/segments")).status_code == 200
            first.advance(START + dt.timedelta(days=3))  # the engine's (test) clock does not end a session
            assert (await a.get("/dashboard/segments")).status_code == 200
            logout = await a.post("/dashboard/logout")
            assert logout.status_code == 303
            # The cookie, kept by whoever copied it, opens nothing any more, in either process.
            for client in (a, b):
                client.cookies.set("growth_session", cookie)
                page = await client.get("/dashboard/segments")
                assert page.status_code == 303 and page.headers["location"].startswith("/dashboard/login")
    finally:
        first.close()
        second.close()


async def test_the_cookie_is_secure_over_https(engine: Engine) -> None:
    async with browser(engine, "https://growth.example") as client:
        login = await sign_in(client)
        assert login.status_code == 303
        assert "secure" in login.headers["set-cookie"].lower().split("; ")


async def test_failed_sign_ins_are_limited(engine: Engine) -> None:
    engine.settings.login_attempts = 3
    async with browser(engine) as client:
        for _ in range(3):
            assert (await sign_in(client, "wrong")).status_code == 401
        assert (await sign_in(client, WRITE_KEY)).status_code == 429  # a write key is a failure too, by now
        limited = await sign_in(client)  # even the right key waits: guessing must not go on
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 300
        assert 'id="login-error"' in limited.text


def test_the_sign_in_limit_is_a_window_in_system_time() -> None:
    clock = ManualClock(START)
    throttle = LoginThrottle(clock, attempts=2, window_s=60)
    throttle.failed("10.0.0.1")
    clock.set(START + dt.timedelta(seconds=30))
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 30
    assert throttle.retry_after("10.0.0.2") is None  # per client
    clock.set(START + dt.timedelta(seconds=60))
    assert throttle.retry_after("10.0.0.1") is None  # the first failure has left the window
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 30
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") is None


def test_the_limit_forgets_idle_clients_when_full() -> None:
    clock = ManualClock(START)
    throttle = LoginThrottle(clock, attempts=1, window_s=60, max_clients=2)
    throttle.failed("a")
    throttle.failed("b")
    clock.set(START + dt.timedelta(minutes=2))
    throttle.failed("c")
    assert throttle.retry_after("c") is not None and throttle.retry_after("a") is None


def test_sessions_expire_after_twelve_hours_of_system_time(engine: Engine) -> None:
    system = ManualClock(START)
    sessions = DashboardSessions(engine.store, system)
    token = sessions.open()
    assert sessions.valid(token) and not sessions.valid(token + "x") and not sessions.valid(None)
    system.set(START + dt.timedelta(microseconds=SESSION_US - 1))
    assert sessions.valid(token)
    system.set(START + dt.timedelta(microseconds=SESSION_US))
    assert not sessions.valid(token)
    sessions.open()  # clears what has expired
    with engine.store.transaction() as tx:
        assert tx.conn.exec_driver_sql("SELECT count(*) FROM dashboard_sessions").scalar() == 1

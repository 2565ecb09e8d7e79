"""The outside coupon engine client against a real local HTTP server: retries, timeouts, refusals."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Iterator
from decimal import Decimal

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from growthengine.clock import ManualClock
from growthengine.content.coupon_client import HttpCouponEngine
from growthengine.content.coupons import CouponRequest, CouponUnavailable
from growthengine.content.http_retry import RetryPolicy
from tests.waiting import StalledHandler, wait_until

PATH = "/coupons/generate"
FAST = RetryPolicy(attempts=3, timeout_s=2.0, backoff_s=0.25, max_backoff_s=4.0)


@pytest.fixture(scope="module")
def running_server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def server(running_server: HTTPServer) -> Iterator[HTTPServer]:
    running_server.clear()
    yield running_server
    running_server.clear()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def engine(server: HTTPServer, clock: ManualClock, sleeps: list[float]) -> Iterator[HttpCouponEngine]:
    with HttpCouponEngine(server.url_for(""), clock=clock, api_key="k-123", policy=FAST, sleep=sleeps.append) as eng:
        yield eng


def request() -> CouponRequest:
    return CouponRequest.build("u-42", type="percent", value=5, expiry="24h")


def test_generate_posts_the_contract_body_and_reads_the_code(
    server: HTTPServer, engine: HttpCouponEngine, clock: ManualClock
) -> None:
    server.expect_ordered_request(
        PATH, method="POST",
        json={"type": "percent", "value": 5, "expiry": "24h", "user_id": "u-42"},
        headers={"Authorization": "Bearer k-123", "Idempotency-Key": "flow:cart:u-42:L1:coupon"},
    ).respond_with_json({"code": "SAVE5-XYZ"})
    coupon = engine.generate(request(), key="flow:cart:u-42:L1:coupon")
    assert coupon.code == "SAVE5-XYZ"
    assert (coupon.user_id, coupon.type, coupon.value) == ("u-42", "percent", Decimal(5))
    assert coupon.expires_at == clock.now() + dt.timedelta(hours=24)
    server.check_assertions()


def test_the_services_own_expiry_wins(server: HTTPServer, engine: HttpCouponEngine) -> None:
    server.expect_ordered_request(PATH, method="POST").respond_with_json(
        {"code": "save5-abc", "expires_at": "2026-01-06T12:00:00+07:00"}
    )
    coupon = engine.generate(request())
    assert coupon.code == "SAVE5-ABC"
    assert coupon.expires_at == dt.datetime(2026, 1, 6, 5, 0, tzinfo=dt.UTC)


def test_5xx_then_success_is_retried_with_backoff(
    server: HTTPServer, engine: HttpCouponEngine, sleeps: list[float]
) -> None:
    server.expect_ordered_request(PATH, method="POST").respond_with_data("down", status=503)
    server.expect_ordered_request(PATH, method="POST").respond_with_data("oops", status=500)
    server.expect_ordered_request(PATH, method="POST").respond_with_json({"code": "SAVE5-OK"})
    assert engine.generate(request()).code == "SAVE5-OK"
    assert len(server.log) == 3
    assert sleeps == [0.25, 0.5]


def test_4xx_is_not_retried(server: HTTPServer, engine: HttpCouponEngine, sleeps: list[float]) -> None:
    server.expect_request(PATH, method="POST").respond_with_json({"error": "unknown user"}, status=422)
    with pytest.raises(CouponUnavailable, match="HTTP 422 unknown user") as info:
        engine.generate(request())
    assert info.value.status == 422
    assert len(server.log) == 1 and sleeps == []


def test_unavailable_after_the_retries(server: HTTPServer, engine: HttpCouponEngine, sleeps: list[float]) -> None:
    server.expect_request(PATH, method="POST").respond_with_data("down", status=502)
    with pytest.raises(CouponUnavailable, match="after 3 attempts: HTTP 502") as info:
        engine.generate(request())
    assert info.value.status == 502
    assert len(server.log) == 3 and sleeps == [0.25, 0.5]


def test_a_slow_service_times_out_then_answers(server: HTTPServer, clock: ManualClock, sleeps: list[float]) -> None:
    # The first answer comes only once the test lets it: the client must have given up on it and retried.
    slow = StalledHandler(Response(json.dumps({"code": "SAVE5-LATE"}), content_type="application/json"))
    server.expect_ordered_request(PATH, method="POST").respond_with_handler(slow)
    server.expect_ordered_request(PATH, method="POST").respond_with_json({"code": "SAVE5-FAST"})
    policy = RetryPolicy(attempts=2, timeout_s=0.3, backoff_s=0.1)
    try:
        with HttpCouponEngine(server.url_for(""), clock=clock, policy=policy, sleep=sleeps.append) as eng:
            assert eng.generate(request()).code == "SAVE5-FAST"
    finally:
        slow.release()
    assert slow.entered == 1 and sleeps == [0.1]
    wait_until(lambda: len(server.log) == 2, what="the server answering both requests")


def test_timeouts_every_time_make_it_unavailable(server: HTTPServer, clock: ManualClock) -> None:
    slow = StalledHandler(Response("{}", content_type="application/json"))
    server.expect_request(PATH, method="POST").respond_with_handler(slow)
    policy = RetryPolicy(attempts=2, timeout_s=0.2, backoff_s=0.0)
    try:
        with HttpCouponEngine(server.url_for(""), clock=clock, policy=policy) as eng:
            with pytest.raises(CouponUnavailable, match=r"timed out after 0.2s"):
                eng.generate(request())
    finally:
        slow.release()
    assert slow.entered == 2
    wait_until(lambda: len(server.log) == 2, what="the server answering both attempts")


def test_nothing_listening_is_unavailable(clock: ManualClock, sleeps: list[float]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with HttpCouponEngine(f"http://127.0.0.1:{port}", clock=clock, policy=FAST, sleep=sleeps.append) as eng:
        with pytest.raises(CouponUnavailable, match="could not connect"):
            eng.generate(request())
    assert sleeps == [0.25, 0.5]


@pytest.mark.parametrize("answer", [{"coupon": "x"}, {"code": ""}, {"code": 5}, ["SAVE5"]])
def test_an_answer_without_a_code_is_unavailable(
    server: HTTPServer, engine: HttpCouponEngine, answer: object
) -> None:
    server.expect_request(PATH, method="POST").respond_with_json(answer)
    with pytest.raises(CouponUnavailable, match="without a usable code"):
        engine.generate(request())


def test_a_body_that_is_not_json_is_unavailable(server: HTTPServer, engine: HttpCouponEngine) -> None:
    server.expect_request(PATH, method="POST").respond_with_data("<html>ok</html>", status=200)
    with pytest.raises(CouponUnavailable, match="not JSON"):
        engine.generate(request())

"""The outside recommendation engine client against a real local HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from decimal import Decimal

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from growthengine.content.http_retry import RetryPolicy
from growthengine.content.recommendation_client import HttpRecommendationEngine
from growthengine.content.recommendations import (
    Product,
    RecommendationsUnavailable,
    WithFallback,
)
from tests.waiting import StalledHandler, wait_until

PATH = "/recommendations/batch"
FAST = RetryPolicy(attempts=3, timeout_s=2.0, backoff_s=0.25)
LEICA = {"listing_id": "L1", "title": "Leica M6", "price": 45000, "category": "camera",
         "image_url": "https://img.jaikod.com/1.jpg"}


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
def engine(server: HTTPServer, sleeps: list[float]) -> Iterator[HttpRecommendationEngine]:
    with HttpRecommendationEngine(server.url_for(""), api_key="k", policy=FAST, sleep=sleeps.append) as eng:
        yield eng


def test_batch_posts_user_ids_and_reads_products(server: HTTPServer, engine: HttpRecommendationEngine) -> None:
    server.expect_ordered_request(
        PATH, method="POST", json=["u1", "u2", "u3"], query_string={"limit": "2"},
        headers={"Authorization": "Bearer k"},
    ).respond_with_json({
        "u1": [LEICA, {"id": 7, "name": "Fuji X100", "price": "1234.50"}, {"listing_id": "L9", "title": "extra"}],
        "u2": [{"title": "no id, dropped"}],
    })
    answer = engine.recommend(["u1", "u2", "u3", "u1"], limit=2)
    assert answer == {
        "u1": [
            Product(listing_id="L1", title="Leica M6", price=Decimal(45000), category="camera",
                    image_url="https://img.jaikod.com/1.jpg"),
            Product(listing_id="7", title="Fuji X100", price=Decimal("1234.50")),
        ],
        "u2": [],
        "u3": [],
    }
    server.check_assertions()


def test_large_batches_are_split(server: HTTPServer, sleeps: list[float]) -> None:
    server.expect_ordered_request(PATH, method="POST", json=["a", "b"]).respond_with_json({"a": [LEICA]})
    server.expect_ordered_request(PATH, method="POST", json=["c"]).respond_with_json({"c": [LEICA]})
    with HttpRecommendationEngine(server.url_for(""), policy=FAST, batch_size=2) as eng:
        answer = eng.recommend(["a", "b", "c"])
    assert [len(answer[u]) for u in "abc"] == [1, 0, 1]
    server.check_assertions()


def test_5xx_then_success_is_retried(server: HTTPServer, engine: HttpRecommendationEngine, sleeps: list[float]) -> None:
    server.expect_ordered_request(PATH, method="POST").respond_with_data("busy", status=503)
    server.expect_ordered_request(PATH, method="POST").respond_with_json({"u1": [LEICA]})
    assert engine.recommend(["u1"])["u1"][0].listing_id == "L1"
    assert len(server.log) == 2 and sleeps == [0.25]


def test_4xx_is_not_retried(server: HTTPServer, engine: HttpRecommendationEngine, sleeps: list[float]) -> None:
    server.expect_request(PATH, method="POST").respond_with_json({"detail": "bad body"}, status=400)
    with pytest.raises(RecommendationsUnavailable, match="HTTP 400 bad body") as info:
        engine.recommend(["u1"])
    assert info.value.status == 400
    assert len(server.log) == 1 and sleeps == []


def test_unavailable_after_the_retries(
    server: HTTPServer, engine: HttpRecommendationEngine, sleeps: list[float]
) -> None:
    server.expect_request(PATH, method="POST").respond_with_data("down", status=500)
    with pytest.raises(RecommendationsUnavailable, match="after 3 attempts: HTTP 500"):
        engine.recommend(["u1"])
    assert len(server.log) == 3 and sleeps == [0.25, 0.5]


def test_rate_limiting_is_retried(server: HTTPServer, engine: HttpRecommendationEngine) -> None:
    server.expect_ordered_request(PATH, method="POST").respond_with_data("slow down", status=429)
    server.expect_ordered_request(PATH, method="POST").respond_with_json({})
    assert engine.recommend(["u1"]) == {"u1": []}


def test_timeout(server: HTTPServer, sleeps: list[float]) -> None:
    slow = StalledHandler(Response(json.dumps({"u1": [LEICA]}), content_type="application/json"))
    server.expect_request(PATH, method="POST").respond_with_handler(slow)
    policy = RetryPolicy(attempts=2, timeout_s=0.2, backoff_s=0.05)
    try:
        with HttpRecommendationEngine(server.url_for(""), policy=policy, sleep=sleeps.append) as eng:
            with pytest.raises(RecommendationsUnavailable, match="timed out"):
                eng.recommend(["u1"])
    finally:
        slow.release()
    assert sleeps == [0.05] and slow.entered == 2
    wait_until(lambda: len(server.log) == 2, what="the server answering both attempts")


@pytest.mark.parametrize("answer", [["u1"], {"u1": {"not": "a list"}}])
def test_a_malformed_answer_is_unavailable(
    server: HTTPServer, engine: HttpRecommendationEngine, answer: object
) -> None:
    server.expect_request(PATH, method="POST").respond_with_json(answer)
    with pytest.raises(RecommendationsUnavailable):
        engine.recommend(["u1"])


class _Fixed:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def recommend(self, user_ids: Sequence[str], *, limit: int = 6) -> dict[str, list[Product]]:
        self.asked.append(list(user_ids))
        return {u: [Product(listing_id="F1", title="fallback")] for u in user_ids}


def test_the_fallback_answers_when_the_outside_engine_is_down(
    server: HTTPServer, engine: HttpRecommendationEngine
) -> None:
    server.expect_request(PATH, method="POST").respond_with_data("down", status=503)
    fallback = _Fixed()
    answer = WithFallback(engine, fallback).recommend(["u1", "u2"])
    assert answer == {u: [Product(listing_id="F1", title="fallback")] for u in ("u1", "u2")}
    assert fallback.asked == [["u1", "u2"]]


def test_the_fallback_is_not_asked_when_the_outside_engine_answers(
    server: HTTPServer, engine: HttpRecommendationEngine
) -> None:
    server.expect_request(PATH, method="POST").respond_with_json({"u1": [LEICA]})
    fallback = _Fixed()
    assert WithFallback(engine, fallback).recommend(["u1"])["u1"][0].title == "Leica M6"
    assert fallback.asked == []

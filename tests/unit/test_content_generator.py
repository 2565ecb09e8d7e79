"""The content generator against a local stand-in server speaking the chat-completions protocol: a good answer is
used, and a timeout, garbage, a dropped price or an over-long text never reaches a user (curated copy, reason kept)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from growthengine.optimize.content_generator import (
    DraftRequest,
    GenerationFailed,
    GeneratorConfig,
    OpenAICompatibleGenerator,
    parse_drafts,
)
from growthengine.optimize.copy_variants import CopyRequest, CopyWriter
from tests.waiting import StalledHandler, wait_until

PATH = "/v1/chat/completions"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
CURATED = "ลดล้างสต็อก! {{ product }} เริ่มต้น {{ price }} รีบช้อปก่อนหมด 🛒"
REQUEST = CopyRequest(
    template="camera_promo_push", channel="push", language="th", tags=("price_sensitive",), curated=CURATED,
    values={"product": "กล้องฟิล์ม Nikon FM2", "price": "฿4,500"}, required=("price",))


def completion(content: str) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "local-model",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}


def variants(*texts: str) -> dict[str, Any]:
    return completion(json.dumps({"variants": list(texts)}, ensure_ascii=False))


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
def generator(server: HTTPServer) -> Iterator[OpenAICompatibleGenerator]:
    config = GeneratorConfig(base_url=server.url_for("/v1"), model="local-model", api_key="sk-local", timeout_s=0.3,
                             attempts=2)
    with OpenAICompatibleGenerator(config, sleep=lambda _s: None) as gen:
        yield gen


def test_a_good_answer_is_validated_filled_and_cached(server: HTTPServer,
                                                       generator: OpenAICompatibleGenerator) -> None:
    server.expect_request(PATH, method="POST").respond_with_json(variants(
        "ของถูกบอกต่อ! {{ product }} เหลือ {{ price }} เท่านั้น แตะเลย 👉",
        "ราคานี้ไม่มีอีกแล้ว {{ product }} {{ price }} รีบก่อนหมด 🛒"))
    writer = CopyWriter(generator)
    choice = writer.write(REQUEST, now=NOW)
    assert choice.source == "generated" and choice.variant == "ai_1"
    assert choice.text == "ของถูกบอกต่อ! กล้องฟิล์ม Nikon FM2 เหลือ ฿4,500 เท่านั้น แตะเลย 👉"
    assert choice.reason.startswith("generated")
    found = writer.variants(REQUEST, now=NOW)
    assert list(found.variants) == ["curated", "ai_1", "ai_2"]
    assert found.cache == "hit"
    request, _ = server.log[0]
    body = request.get_json()
    assert request.headers["Authorization"] == "Bearer sk-local"
    assert body["model"] == "local-model" and body["response_format"] == {"type": "json_object"}
    brief = json.loads(body["messages"][1]["content"])
    assert brief["curated_copy"] == CURATED and brief["user_context"] == ["price_sensitive"]
    assert brief["placeholders_required"] == ["{{ price }}"] and brief["max_characters"] == 178
    # a message for another product reuses the drafts: one call per (template, context)
    other = replace(REQUEST, values={"product": "Leica M6", "price": "฿45,000"})
    assert "฿45,000" in writer.write(other, now=NOW).text
    assert len(server.log) == 1


def test_a_timeout_falls_back_to_curated_and_is_not_retried_for_a_while(
        server: HTTPServer, generator: OpenAICompatibleGenerator) -> None:
    slow = StalledHandler(Response(json.dumps(variants("ช้าไป {{ price }}")), content_type="application/json"))
    server.expect_request(PATH, method="POST").respond_with_handler(slow)
    writer = CopyWriter(generator, retry_after=dt.timedelta(minutes=15))
    try:
        choice = writer.write(REQUEST, now=NOW)
    finally:
        slow.release()
    assert (choice.source, choice.variant) == ("curated", "curated")
    assert choice.text == "ลดล้างสต็อก! กล้องฟิล์ม Nikon FM2 เริ่มต้น ฿4,500 รีบช้อปก่อนหมด 🛒"
    assert choice.reason.startswith("generator_failed: unavailable")
    assert "timed out" in choice.reason
    assert slow.entered == 2  # two attempts
    wait_until(lambda: len(server.log) == 2, what="the server logging both answered attempts")
    assert writer.write(REQUEST, now=NOW + dt.timedelta(minutes=5)).reason == choice.reason
    assert len(server.log) == 2  # the failure is remembered: no new call
    server.clear()
    server.expect_request(PATH, method="POST").respond_with_json(variants("มาแล้ว! {{ product }} {{ price }} แตะเลย"))
    assert writer.write(REQUEST, now=NOW + dt.timedelta(minutes=16)).source == "generated"


@pytest.mark.parametrize(("answer", "code"), [
    (Response("<html>oops</html>", content_type="text/html"), "not_json"),
    (Response(json.dumps(completion("Sure! Here are some variants: 1. ...")), content_type="application/json"),
     "not_json"),
    (Response(json.dumps({"error": "nope", "choices": []}), content_type="application/json"), "bad_answer"),
    (Response(json.dumps(completion(json.dumps({"drafts": ["x"]}))), content_type="application/json"), "bad_answer"),
])
def test_garbage_falls_back_to_curated(server: HTTPServer, generator: OpenAICompatibleGenerator, answer: Response,
                                       code: str) -> None:
    server.expect_request(PATH, method="POST").respond_with_response(answer)
    choice = CopyWriter(generator).write(REQUEST, now=NOW)
    assert choice.source == "curated"
    assert choice.reason.startswith(f"generator_failed: {code}")


def test_a_dropped_price_falls_back_to_curated(server: HTTPServer, generator: OpenAICompatibleGenerator) -> None:
    server.expect_request(PATH, method="POST").respond_with_json(variants(
        "ลดล้างสต็อก! {{ product }} ราคาพิเศษ แตะเลย", "ลดล้างสต็อก! {{ product }} เพียง ฿3,990"))
    choice = CopyWriter(generator).write(REQUEST, now=NOW)
    assert choice.source == "curated"
    assert choice.reason.startswith("all_drafts_rejected: ai_1: required fact '฿4,500'")
    assert set(choice.inputs["rejected"]) == {"ai_1", "ai_2"}


def test_an_over_long_text_falls_back_to_curated(server: HTTPServer, generator: OpenAICompatibleGenerator) -> None:
    server.expect_request(PATH, method="POST").respond_with_json(variants(
        "ลดล้างสต็อก! {{ product }} {{ price }} " + "ของดีราคาถูก " * 20))
    choice = CopyWriter(generator).write(REQUEST, now=NOW)
    assert choice.source == "curated"
    assert "over the push limit of 178" in choice.reason


def test_only_drafts_that_pass_are_offered(server: HTTPServer, generator: OpenAICompatibleGenerator) -> None:
    server.expect_request(PATH, method="POST").respond_with_json(variants(
        "ลดราคา [Product] {{ price }}", "ลดราคา {{ product }} {{ price }} แตะเลย"))
    writer = CopyWriter(generator)
    choice = writer.write(REQUEST, now=NOW)
    assert (choice.source, choice.variant) == ("generated", "ai_2")
    assert "unresolved placeholder '[Product]'" in choice.inputs["rejected"]["ai_1"][0]
    asked = writer.write(REQUEST, now=NOW, variant="ai_1")  # an experiment asking for the rejected one
    assert asked.source == "curated" and asked.reason.startswith("variant_rejected: ai_1")
    assert writer.write(REQUEST, now=NOW, variant="curated").reason.startswith("curated_requested")


def test_a_server_error_is_retried(server: HTTPServer, generator: OpenAICompatibleGenerator) -> None:
    server.expect_ordered_request(PATH, method="POST").respond_with_data("busy", status=503)
    server.expect_ordered_request(PATH, method="POST").respond_with_json(
        completion("```json\n" + json.dumps({"variants": ["โปรแรง {{ product }} {{ price }}"]}) + "\n```"))
    choice = CopyWriter(generator).write(REQUEST, now=NOW)
    assert choice.source == "generated"
    assert len(server.log) == 2


def test_without_a_generator_the_curated_copy_is_the_default() -> None:
    choice = CopyWriter(None).write(REQUEST, now=NOW)
    assert (choice.source, choice.reason) == ("curated", "no_generator: no content generator is configured")


def test_parse_drafts_accepts_objects_and_rejects_empty() -> None:
    assert parse_drafts(completion(json.dumps([{"text": " ก "}, "ข"]))) == ["ก", "ข"]
    with pytest.raises(GenerationFailed):
        parse_drafts(completion(json.dumps({"variants": ["", "  "]})))


def test_the_request_names_slots_and_limits() -> None:
    gen = OpenAICompatibleGenerator(GeneratorConfig(base_url="http://127.0.0.1:9/v1", model="m", json_mode=False))
    body = gen.payload(DraftRequest("t", "sms", "th", ("loves_cameras",), "x {{ price }}", ("price",), ("price",), 70))
    gen.close()
    assert "response_format" not in body
    assert json.loads(body["messages"][1]["content"])["placeholders_allowed"] == ["{{ price }}"]

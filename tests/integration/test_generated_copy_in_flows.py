"""A content generator (a local stand-in speaking the chat-completions protocol) drafts the price-drop push;
a draft that keeps the prices is used, one that drops a price never reaches a user (the curated copy goes)."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_httpserver import HTTPServer

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.settings import Settings
from tests.scenarios.story import Story


def _answer(text: str) -> dict[str, object]:
    content = json.dumps({"variants": [text]}, ensure_ascii=False)
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


def _price_drop(tmp_path: Path, clock: ManualClock, server: HTTPServer, name: str) -> list[tuple[str, str, dict]]:
    settings = Settings(db_url=f"sqlite:///{tmp_path / name}", data_dir=tmp_path,
                        genai_base_url=server.url_for("/v1"), genai_model="local-model")
    engine = build_engine(settings, clock=clock)
    try:
        story = Story(engine, clock)
        story.track("shop", "listing_created", listing_id="L7", title="Fuji X100V", price=27500)
        story.identify("fan", push_token="t", consent={"push": True})
        story.track("fan", "favorite_added", listing_id="L7")
        story.track("shop", "listing_price_changed", listing_id="L7", old_price=27500, new_price=24000)
        return [(m.body, m.variant or "", m.data["copy"]) for m in engine.messages(flow="price_drop")]
    finally:
        engine.close()


def test_generated_copy_is_used_only_when_it_keeps_the_facts(httpserver: HTTPServer, tmp_path: Path,
                                                             clock: ManualClock) -> None:
    good = "ลดแรง! Fuji X100V เหลือ ฿24,000 จาก ฿27,500 รีบก่อนใคร 🔥"
    httpserver.expect_oneshot_request("/v1/chat/completions", method="POST").respond_with_json(_answer(good))
    [(body, variant, copy)] = _price_drop(tmp_path, clock, httpserver, "a.db")
    assert (body, variant, copy["source"]) == (good, "ai_1", "generated")

    httpserver.expect_oneshot_request("/v1/chat/completions", method="POST").respond_with_json(
        _answer("ลดแรง! Fuji X100V ราคาดีมาก รีบก่อนใคร 🔥"))
    [(body, _, copy)] = _price_drop(tmp_path, clock, httpserver, "b.db")
    assert copy["source"] == "curated" and "ราคาลงแล้ว! Fuji X100V เหลือเพียง ฿24,000 (จาก ฿27,500)" in body
    assert copy["reason"]

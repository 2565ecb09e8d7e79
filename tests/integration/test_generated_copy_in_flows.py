"""A content generator (a local stand-in speaking the chat-completions protocol) drafts the price-drop push;
a draft that keeps the prices is used, one that drops a price never reaches a user (the curated copy goes)."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

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


CAMERA_CUT = """
flows:
  camera_deals: null
  camera_price_cut:
    trigger: {event: listing_price_changed, per: listing_id, audience: favorited}
    steps:
      - name: camera_push
        send:
          channel: push
          template: camera_promo_push
          variants: [default, camera_lover, price_sensitive]
          experiment: {explore_share: 1.0}
"""


def test_an_experiments_arms_are_drafted_for_their_context(httpserver: HTTPServer, tmp_path: Path,
                                                           clock: ManualClock) -> None:
    """SPEC 4.B with a generator: the camera-lover and price-sensitive arms are drafted for that context and kept
    when they keep the facts; the control stays the curated copy; a draft that changes the price is refused."""
    briefs: list[dict[str, object]] = []

    def answer(request: Request) -> Response:
        brief = json.loads(json.loads(request.data)["messages"][1]["content"])
        briefs.append(brief)
        draft = ("เลนส์ใหม่มาแล้ว! Nikon FM2 เพียง ฿8,000 แตะดูเลย 📸" if "camera_lover" in brief["user_context"]
                 else "ลดหนัก! กล้องมือสองเริ่มต้น 7,000.- รีบเลย 🛒")
        return Response(json.dumps(_answer(draft), ensure_ascii=False), content_type="application/json")

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(answer)
    config = tmp_path / "growth.yaml"
    config.write_text(CAMERA_CUT, encoding="utf-8")
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'c.db'}", data_dir=tmp_path, config_file=config,
                        genai_base_url=httpserver.url_for("/v1"), genai_model="local-model")
    engine = build_engine(settings, clock=clock)
    try:
        story = Story(engine, clock)
        story.track("shop", "listing_created", listing_id="L1", title="Nikon FM2", price=8500, category="cameras")
        for n in range(30):
            story.identify(f"u{n}", push_token=f"t{n}", consent={"push": True})
            story.track(f"u{n}", "favorite_added", listing_id="L1")
        story.track("shop", "listing_price_changed", listing_id="L1", old_price=8500, new_price=8000)
        by_arm = {m.variant: m for m in engine.messages(flow="camera_price_cut")}
        assert set(by_arm) == {"default", "camera_lover", "price_sensitive"}
        lover, cheap, control = by_arm["camera_lover"], by_arm["price_sensitive"], by_arm["default"]
        assert (lover.body, lover.data["copy"]["source"]) == ("เลนส์ใหม่มาแล้ว! Nikon FM2 เพียง ฿8,000 แตะดูเลย 📸",
                                                              "generated")
        assert cheap.data["copy"]["source"] == "curated" and "8,000.-" in cheap.body  # the draft lost the price
        assert "copy" not in control.data and control.body.startswith("กล้องมือสองสภาพดีมาใหม่!")
        assert sorted(tuple(b["user_context"]) for b in briefs) == [("camera_lover",), ("price_sensitive",)]
    finally:
        engine.close()

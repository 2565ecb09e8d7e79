"""A send step with variants: 10 % explore across the variants, the rest get the control until the always-valid
test decides; opens count as conversions; every choice is stored on the message with its reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.settings import Settings

FLOW = """
flows:
  camera_promo:
    trigger: {event: item_viewed, where: {category: cameras}, per: listing_id}
    steps:
      - name: promo
        send:
          channel: push
          template: camera_promo_push
          variants: [default, camera_lover, price_sensitive]
"""


def test_variants_are_explored_and_recorded(tmp_path: Path, clock: ManualClock) -> None:
    config = tmp_path / "growth.yaml"
    config.write_text(FLOW, encoding="utf-8")
    engine = build_engine(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", config_file=config), clock=clock)
    try:
        calls = []
        for n in range(600):
            calls.append({"type": "identify", "userId": f"u{n}", "traits": {"push_token": "t",
                                                                          "consent": {"push": True}}})
            calls.append({"type": "track", "userId": f"u{n}", "event": "item_viewed",
                          "properties": {"listing_id": "L1", "title": "Nikon FM2", "category": "cameras",
                                         "price": 8500}})
        for start in range(0, len(calls), 1000):
            assert not engine.ingest(calls[start:start + 1000]).rejected
        promos = engine.messages(flow="camera_promo", limit=10_000)
        assert len(promos) == 600
        reasons = Counter(m.data["experiment"]["reason"] for m in promos)
        variants = Counter(m.variant for m in promos)
        assert 30 <= reasons["explore"] <= 100, reasons
        assert variants["default"] >= 500 and variants["camera_lover"] > 5 and variants["price_sensitive"] > 5
        lover = next(m for m in promos if m.variant == "camera_lover")
        assert lover.body != next(m for m in promos if m.variant == "default").body
        opened = [m for m in promos if m.variant == "camera_lover"][:5]
        engine.ingest([{"type": "track", "userId": m.user_id, "event": "message_opened",
                        "properties": {"message_id": m.id}} for m in opened])
        with engine.store.transaction() as tx:
            state = tx.state.get("experiment:camera_promo.promo")
        assert state["variants"]["camera_lover"]["conversions"] == 5
        assert sum(v["sends"] for v in state["variants"].values()) == 600
    finally:
        engine.close()

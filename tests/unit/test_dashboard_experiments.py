"""The experiments page shows each send step that runs variants, with every variant's counts and the verdict; a
store without experiments says so (the browser test covers that case)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.settings import Settings
from tests.scenarios.test_experiments_in_flows import FLOW
from tests.unit.api_client import ADMIN_KEY, api_client

pytestmark = pytest.mark.anyio


async def test_a_step_with_variants_is_shown_with_its_counts_and_verdict(tmp_path: Path, clock: ManualClock) -> None:
    config = tmp_path / "growth.yaml"
    config.write_text(FLOW, encoding="utf-8")
    engine = build_engine(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", config_file=config), clock=clock)
    try:
        calls = []
        for n in range(60):
            calls.append({"type": "identify", "userId": f"u{n}", "traits": {"push_token": "t",
                                                                          "consent": {"push": True}}})
            calls.append({"type": "track", "userId": f"u{n}", "event": "item_viewed",
                          "properties": {"listing_id": "L1", "title": "Nikon FM2", "category": "cameras",
                                         "price": 8500}})
        assert not engine.ingest(calls).rejected
        sent: dict[str, int] = {}
        for message in engine.messages(flow="camera_promo", limit=1000):
            assert message.variant
            sent[message.variant] = sent.get(message.variant, 0) + 1
        async with api_client(engine) as client:
            login = await client.post("/dashboard/login", data={"key": ADMIN_KEY, "next": "/"})
            assert login.status_code == 303
            page = await client.get("/dashboard/experiments")
    finally:
        engine.close()
    assert page.status_code == 200, page.text
    html = page.text
    assert 'id="no-experiments"' not in html
    assert re.findall(r'class="card experiment" data-flow="([^"]+)" data-step="([^"]+)"', html) == [
        ("camera_promo", "promo")]
    shown = {name: int(n) for name, n in re.findall(r'<tr data-variant="([^"]+)" data-sent="(\d+)"', html)}
    assert shown == sent and sum(shown.values()) == 60
    [verdict] = re.findall(r'class="verdict" data-verdict="([^"]+)"', html)
    assert verdict not in ("", "pending"), "the experiment engine has a state for this step"

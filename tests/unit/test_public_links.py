"""Links the engine puts in messages (one-click unsubscribe, ``List-Unsubscribe``) use a configured public URL,
which defaults to the address ``growth serve`` actually serves (CONTRACT.md 9; no more port 8000 whatever the port)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.settings import Settings, load_settings
from tests.conftest import START


def test_the_public_url_defaults_to_the_served_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROWTH_PUBLIC_URL", raising=False)
    assert Settings().public_url == "http://127.0.0.1:8000"
    assert load_settings(host="127.0.0.1", port=9123).public_url == "http://127.0.0.1:9123"
    assert load_settings(host="0.0.0.0", port=80).public_url == "http://127.0.0.1:80"
    assert load_settings(host="::", port=81).public_url == "http://127.0.0.1:81"
    assert load_settings(host="::1", port=83).public_url == "http://[::1]:83"
    assert load_settings(host="growth.internal", port=82).public_url == "http://growth.internal:82"


def test_a_configured_public_url_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GROWTH_PUBLIC_URL", "https://growth.jaikod.com/")
    assert load_settings(port=9123).public_url == "https://growth.jaikod.com"
    monkeypatch.delenv("GROWTH_PUBLIC_URL")
    config = tmp_path / "growth.yaml"
    config.write_text("settings:\n  public_url: https://links.jaikod.com\n", encoding="utf-8")
    assert load_settings(config, port=9123).public_url == "https://links.jaikod.com"
    with pytest.raises(ValidationError, match="http"):
        Settings(public_url="growth.jaikod.com")


def test_unsubscribe_links_point_at_the_served_port(sqlite_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROWTH_PUBLIC_URL", raising=False)
    clock = ManualClock(START)
    settings = load_settings(db_url=sqlite_url, data_dir=tmp_path / "data", port=9123)
    engine = build_engine(settings, clock=clock)
    try:
        engine.ingest([
            {"type": "identify", "userId": "s1", "traits": {"email": "s1@example.test", "consent": {"email": True}}},
            {"type": "track", "userId": "s1", "event": "seller_registered"},
        ])
        engine.advance(START + dt.timedelta(days=3))
        [email] = [m for m in engine.messages(user_id="s1", channel="email") if m.status == "sent"]
        assert email.data["unsubscribe_url"].startswith("http://127.0.0.1:9123/u/")
    finally:
        engine.close()

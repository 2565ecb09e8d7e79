"""Segment config is validated on load: every problem is refused with its file, path, line and reason."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from growthengine.bootstrap import build_engine
from growthengine.clock import ManualClock
from growthengine.config.errors import ConfigError
from growthengine.config.loader import load_config
from growthengine.settings import Settings


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(issue) for issue in info.value.issues]


def test_the_defaults_load_with_the_five_contract_segments() -> None:
    config = load_config()
    assert set(config.segments) == {"churn_risk", "high_ltv", "window_shoppers", "local_buyers", "cart_abandoners"}
    assert config.segments["window_shoppers"].refresh == "hourly"
    assert config.segments["local_buyers"].refresh == "daily"
    assert config.segments["cart_abandoners"].refresh == "realtime"


def test_unknown_operator_is_refused_with_file_path_and_line(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "segments:\n  s:\n    event: item_viewed\n    count: {gtt: 20}\n")
    assert errors == [f"{tmp_path / 'config.yaml'}:4: segments.s.count.gtt: unknown operator 'gtt'; "
                      "use one of eq, ne, gt, gte, lt, lte, in, not_in, contains, exists"]


def test_bad_window_is_refused(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "segments:\n  s:\n    event: item_viewed\n    count: {gt: 2}\n    within: 7 dayz\n")
    assert len(errors) == 1
    assert "segments.s.within" in errors[0] and "'7 dayz' is not a duration" in errors[0] and ":5:" in errors[0]


def test_a_cycle_is_refused(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "segments:\n  a:\n    segment: b\n  b:\n    not: {segment: a}\n")
    assert any("cycle" in e and "a -> b -> a" in e for e in errors)


def test_property_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "segments:\n  s:\n    event: purchase\n    sum: {of: order_id, gt: 10}\n")
    assert "purchase.order_id is string; sum needs a number property" in errors[0]
    errors = _errors(tmp_path, "segments:\n  s:\n    event: item_viewed\n    count: {gt: many}\n")
    assert "gt needs a number here" in errors[0]
    errors = _errors(tmp_path, "segments:\n  s:\n    event: item_viewed\n    where: {category: {gt: 3}}\n"
                               "    count: {gt: 1}\n")
    assert "gt compares numbers, but this property is text" in errors[0]


def test_every_bad_item_is_reported_not_only_the_first(tmp_path: Path) -> None:
    errors = _errors(tmp_path, "segments:\n  s:\n    all:\n      - event: a\n        count: {gtt: 1}\n"
                               "      - inactive: 3 weeks\n  t:\n    frobnicate: 1\n")
    assert len(errors) == 3
    assert any("segments.s.all[1].inactive" in e for e in errors)
    assert any("segments.t.frobnicate: unknown field" in e for e in errors)


def test_unknown_segment_reference_and_bad_yaml(tmp_path: Path) -> None:
    assert "refers to unknown segment 'nope'" in _errors(tmp_path, "segments:\n  a:\n    segment: nope\n")[0]
    assert "not valid YAML" in _errors(tmp_path, "segments: [\n")[0]


def test_a_user_file_overrides_and_adds_to_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("segments:\n  high_ltv:\n    name: VIP\n    event: purchase\n    sum: {of: amount, gt: 10000}\n"
                    "  camera_lovers:\n    event: item_viewed\n    where: {category: cameras}\n    count: {gte: 5}\n"
                    "    within: 30d\n", encoding="utf-8")
    config = load_config(path)
    assert config.segments["high_ltv"].name == "VIP"
    assert "camera_lovers" in config.segments and "cart_abandoners" in config.segments


def test_a_running_engine_keeps_its_last_good_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("segments:\n  camera_lovers:\n    event: item_viewed\n    count: {gte: 2}\n", encoding="utf-8")
    clock = ManualClock(dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC))
    engine = build_engine(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", config_file=path), clock=clock)
    try:
        engine.ingest([{"type": "track", "userId": "u1", "event": "item_viewed"}] * 2)
        assert "camera_lovers" in engine.user_view("u1")["segments"]  # type: ignore[index]
        path.write_text("segments:\n  camera_lovers:\n    event: item_viewed\n    count: {gte: two}\n",
                        encoding="utf-8")
        error = engine.reload_config()
        assert error is not None and "gte needs a number" in str(error)
        assert "camera_lovers" in engine.segments.segments
        # An edited rule is back-filled from history on reload.
        path.write_text("segments:\n  camera_lovers:\n    event: item_viewed\n    count: {gte: 3}\n", encoding="utf-8")
        assert engine.reload_config() is None
        assert "camera_lovers" not in engine.user_view("u1")["segments"]  # type: ignore[index]
    finally:
        engine.close()

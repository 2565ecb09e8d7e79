"""Flow config is validated on load against the segments, the templates and the channels."""

from __future__ import annotations

from pathlib import Path

import pytest

from growthengine.config.errors import ConfigError
from growthengine.config.loader import load_config
from growthengine.flows.model import Send


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "flows.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(issue) for issue in info.value.issues]


def test_the_default_flows_load() -> None:
    flows = load_config().flows
    assert {"cart_abandonment", "price_drop", "seller_coach", "weekly_digest"} <= set(flows)
    assert flows["cart_abandonment"].steps[0].name == "nudge_push"
    camera = flows["camera_deals"].steps[0].body  # SPEC 4.B: two variants against the curated copy on 10 %
    assert isinstance(camera, Send)
    assert camera.variants == ("default", "camera_lover", "price_sensitive")
    assert (camera.experiment_mode, dict(camera.experiment_options)) == ("explore", {"explore_share": 0.1})
    assert flows["camera_deals"].holdout_pct == 10


@pytest.mark.parametrize(("flow", "expected"), [
    ("trigger: {segment_entered: nope}\n    steps: [{send: {channel: push, template: cart_nudge_push}}]",
     "unknown segment 'nope'"),
    ("trigger: {event: x}\n    steps: [{send: {channel: fax, template: cart_nudge_push}}]", "unknown channel 'fax'"),
    ("trigger: {event: x}\n    steps: [{send: {channel: push, template: no_such}}]", "unknown template 'no_such'"),
    ("trigger: {event: x}\n    steps: [{send: {channel: email, template: cart_nudge_push}}]",
     "is for push, not email"),
    ("trigger: {event: x}\n    steps: [{send: {channel: email, template: cart_coupon_email}}]",
     "uses coupon, which this flow does not provide"),
    ("trigger: {event: x}\n    steps: [{jump: 3}]", "unknown step field 'jump'"),
    ("trigger: {event: x}\n    steps: [{wait: {for: 3 days}}]", "is not a duration"),
    ("trigger: {event: x}\n    steps: [{send: {channel: push, template: camera_promo_push, variants: [a, b]}}]",
     "has no variant 'a'"),
    ("trigger: {event: x}\n    steps: [{send: {channel: push, template: camera_promo_push, "
     "variants: [default, camera_lover], experiment: {explore_share: 0}}}]", "explore_share is the share"),
    ("trigger: {event: x}\n    steps: [{send: {channel: push, template: camera_promo_push, "
     "variants: [default, camera_lover], experiment: {min_sends: 0}}}]", "min_sends is a whole number"),
    ("trigger: {event: x}\n    steps: [{send: {channel: push, template: camera_promo_push, "
     "variants: [default, camera_lover], experiment: {metric: clicks}}}]", "unknown experiment field 'metric'"),
    ("trigger: {segment_entered: high_ltv}\n    enroll_existing: yes please\n"
     "    steps: [{send: {channel: email, template: high_ltv_vip_email}}]", "enroll_existing is true or false"),
    ("trigger: {event: x}\n    enroll_existing: true\n    steps: [{send: {channel: push, template: cart_nudge_push}}]",
     "enroll_existing applies only to a segment_entered trigger"),
])
def test_a_bad_flow_is_refused_with_file_line_and_path(tmp_path: Path, flow: str, expected: str) -> None:
    errors = _errors(tmp_path, f"flows:\n  f:\n    {flow}\n")
    assert len(errors) == 1 and expected in errors[0], errors
    assert str(tmp_path / "flows.yaml") in errors[0] and "flows.f" in errors[0]

"""``growth check-config FILE``: every problem in one run, several inside one segment, flow or template too, each with
the file, the line, the path inside the file and what is wrong."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner, Result

from growthengine.cli.app import app

SEVERAL_IN_ONE_ITEM = """\
segments:
  big_spenders:
    name: 5
    refresh: sometimes
    colour: blue
    event: purchase
    sum: {of: order_id, gt: lots}
    within: 3 fortnights
  vip:
    segment: big_spenders
flows:
  nudge:
    trigger: {segment_entered: big_spenders}
    reentry: sometimes
    holdout: 150
    steps:
      - wait: {for: 3 dayz}
      - send: {channel: pigeon, template: cart_nudge_push, urgency: panic, priority: high}
      - action: {coupon: {type: gift, value: -5}}
templates:
  promo_sms:
    channel: fax
    colour: red
    th: {body: 5}
"""

ACROSS_ITEMS = """\
bogus: 1
segments:
  a:
    event: item_viewed
    count: {gt: many}
  b:
    pattern: {first: add_to_cart, not_followed_by: [purchase], within: 1h, same: listing_id}
  c:
    trait: province
    eq: Bangkok
flows:
  f:
    trigger: {segment_entered: nowhere}
    steps: [{send: {channel: push, template: cart_nudge_push}}]
  g:
    trigger: {event: purchase}
    steps: [{jump: 3}]
"""

LINE = re.compile(r"^error: (?P<file>\S+):(?P<line>\d+): (?P<path>\S+): (?P<message>.+)$")


def check(tmp_path: Path, text: str) -> tuple[Result, list[dict[str, str]]]:
    file = tmp_path / "growth.yaml"
    file.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["check-config", str(file)])
    problems = []
    for row in result.output.splitlines():
        if row.startswith("error:"):
            match = LINE.match(row)
            assert match is not None, f"a problem without file, line and path: {row!r}"
            assert match["file"] == str(file)
            problems.append(match.groupdict())
    return result, problems


def where(problems: list[dict[str, str]]) -> list[tuple[int, str]]:
    return [(int(p["line"]), p["path"]) for p in problems]


def test_every_problem_inside_one_segment_flow_and_template_is_listed(tmp_path: Path) -> None:
    result, problems = check(tmp_path, SEVERAL_IN_ONE_ITEM)
    assert result.exit_code == 1
    assert where(problems) == [
        (22, "templates.promo_sms.channel"), (23, "templates.promo_sms.colour"), (24, "templates.promo_sms.th.body"),
        (3, "segments.big_spenders.name"), (4, "segments.big_spenders.refresh"),
        (5, "segments.big_spenders.colour"), (7, "segments.big_spenders.sum.of"),
        (7, "segments.big_spenders.sum.gt"), (8, "segments.big_spenders.within"),
        (14, "flows.nudge.reentry"), (15, "flows.nudge.holdout"), (17, "flows.nudge.steps[0].wait.for"),
        (18, "flows.nudge.steps[1].send.channel"), (18, "flows.nudge.steps[1].send.urgency"),
        (18, "flows.nudge.steps[1].send.priority"), (19, "flows.nudge.steps[2].action.coupon.type"),
        (19, "flows.nudge.steps[2].action.coupon.value"),
    ], problems
    said = {p["path"]: p["message"] for p in problems}
    assert "'sometimes'" in said["segments.big_spenders.refresh"]
    assert "purchase.order_id is string" in said["segments.big_spenders.sum.of"]
    assert "'3 fortnights' is not a duration" in said["segments.big_spenders.within"]
    assert "'pigeon'" in said["flows.nudge.steps[1].send.channel"]
    assert "'fax'" in said["templates.promo_sms.channel"]
    # A refused segment is not "unknown" where a flow or another segment names it: its own problems say it.
    assert not any("unknown segment" in p["message"] for p in problems)
    assert f"{len(problems)} problems" in result.output


def test_problems_across_items_and_sections_in_one_run(tmp_path: Path) -> None:
    result, problems = check(tmp_path, ACROSS_ITEMS)
    assert result.exit_code == 1
    assert where(problems) == [
        (1, "bogus"), (5, "segments.a.count.gt"), (6, "segments.b"), (13, "flows.f.trigger.segment_entered"),
        (17, "flows.g.steps[0].jump"),
    ], problems
    said = {p["path"]: p["message"] for p in problems}
    assert "unknown section" in said["bogus"]
    assert "needs leaves_after" in said["segments.b"]
    assert "unknown segment 'nowhere'" in said["flows.f.trigger.segment_entered"]
    assert "unknown step field 'jump'; a step is one of wait, send, action, branch" in said["flows.g.steps[0].jump"]


def test_a_good_file_is_ok_and_may_name_the_shipped_segments(tmp_path: Path) -> None:
    text = ("segments:\n  rich_locals:\n    all:\n      - segment: high_ltv\n      - trait: province\n"
            "        eq: Bangkok\n  bangkok:\n    trait: province\n    eq: Bangkok\n"
            "flows:\n  thanks:\n    trigger: {segment_entered: rich_locals}\n"
            "    steps: [{send: {channel: push, template: cart_nudge_push}}]\n")
    result, problems = check(tmp_path, text)
    assert problems == [] and result.exit_code == 0, result.output
    assert "OK (7 segments, 10 flows" in result.output

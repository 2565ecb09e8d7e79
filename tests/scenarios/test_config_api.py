"""Managing without YAML (CONTRACT.md 11), on the manual clock: a segment, a flow and a new template stored over the
API drive a real send; a second engine on the same database follows; the history tells who changed what; the
merged config exports as a file that loads back the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from growthengine.bootstrap import build_engine
from growthengine.cli.app import app
from growthengine.clock import ManualClock
from growthengine.config.loader import load_config
from growthengine.engine import Engine
from growthengine.settings import Settings
from tests.scenarios.story import Story, messages
from tests.unit.api_client import ADMIN, api_client

pytestmark = pytest.mark.anyio

SEGMENT = {"name": "Camera fans", "refresh": "realtime", "event": "item_viewed", "where": {"category": "cameras"},
           "count": {"gte": 2}}
TEMPLATE = {"channel": "push", "th": {"title": "กล้องรอคุณอยู่", "body": "สวัสดี {{ product|default('กล้อง') }} 📷"},
            "en": {"title": "Cameras for you", "body": "Hello camera fan 📷"}}
FLOW = {"name": "Camera fans welcome", "trigger": {"segment_entered": "camera_fans"},
        "steps": [{"name": "hello", "send": {"channel": "push", "kind": "marketing", "template": "camera_fan_push"}}]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _engine(url: str, clock: ManualClock, tmp_path: Path, config_file: Path | None = None) -> Engine:
    return build_engine(Settings(db_url=url, data_dir=tmp_path / "data", config_file=config_file), clock=clock)


async def test_a_flow_made_over_the_api_sends_its_new_template_and_every_process_follows(
        tmp_path: Path, clock: ManualClock) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    engine = _engine(url, clock, tmp_path)
    other = _engine(url, clock, tmp_path)  # a second process on the same database
    try:
        async with api_client(engine) as client:
            for path, body in (("segments/camera_fans", SEGMENT), ("templates/camera_fan_push", TEMPLATE),
                               ("flows/camera_fans_welcome", FLOW)):
                answer = await client.put(f"/v1/config/{path}", json=body, headers=ADMIN)
                assert answer.status_code == 200, answer.text
            story = Story(engine, clock)
            story.identify("en_fan", push_token="t", language="en", consent={"push": True})
            story.identify("th_fan", push_token="t", consent={"push": True})
            for user in ("en_fan", "th_fan"):
                for listing in ("L1", "L2"):
                    story.track(user, "item_viewed", listing_id=listing, category="cameras", title="X100V")
            assert story.in_segment("en_fan", "camera_fans")
            sent = {m["userId"]: m for m in messages(engine, flow="camera_fans_welcome")}
            assert (sent["en_fan"]["title"], sent["en_fan"]["body"]) == ("Cameras for you", "Hello camera fan 📷")
            assert sent["th_fan"]["title"] == "กล้องรอคุณอยู่" and sent["th_fan"]["status"] == "sent"

            flows = {f["key"]: f for f in (await client.get("/v1/flows", headers=ADMIN)).json()["flows"]}
            assert flows["camera_fans_welcome"]["steps"][0]["messages"] == {"sent": 2}
            assert flows["camera_fans_welcome"]["runs"] == {"completed": 2}

            history = (await client.get("/v1/config/history", headers=ADMIN)).json()["changes"]
            assert [(c["kind"], c["key"], c["changedBy"]) for c in history] == [
                ("flow", "camera_fans_welcome", "env:admin"), ("template", "camera_fan_push", "env:admin"),
                ("segment", "camera_fans", "env:admin")]
            assert history[0]["after"] == FLOW and history[0]["before"] is None

        assert "camera_fans_welcome" not in other.flows.flows
        assert other.follow_config() is True
        assert "camera_fans_welcome" in other.flows.flows and "camera_fans" in other.segments.segments
        assert "camera_fan_push" in other.flows.runner.templates
        assert other.follow_config() is False  # nothing new

        # Export: the merged config as one file that loads back the same segments, flows and templates.
        exported = tmp_path / "merged.yaml"
        done = CliRunner().invoke(app, ["config", "export", "--db", url, "-o", str(exported)])
        assert done.exit_code == 0, done.output
        document = yaml.safe_load(exported.read_text(encoding="utf-8"))
        assert document["segments"]["camera_fans"] == SEGMENT and document["flows"]["camera_fans_welcome"] == FLOW
        assert document["templates"]["camera_fan_push"] == TEMPLATE
        again = load_config(exported)
        assert {k: f.version for k, f in again.flows.items()} == {k: f.version for k, f in engine.config.flows.items()}
        assert {k: s.version for k, s in again.segments.items()} == \
            {k: s.version for k, s in engine.config.segments.items()}
        assert again.templates is not None and engine.config.templates is not None
        assert again.templates.keys() == engine.config.templates.keys()
    finally:
        other.close()
        engine.close()


def test_check_config_lists_every_problem_of_a_file_in_one_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("segments:\n  a:\n    refresh: sometimes\n    event: x\n"
                   "templates:\n  t:\n    channel: fax\n"
                   "flows:\n  f:\n    trigger: {segment_entered: nowhere}\n    steps: []\n", encoding="utf-8")
    done = CliRunner().invoke(app, ["check-config", str(bad)])
    assert done.exit_code == 1
    errors = [line for line in done.output.splitlines() if line.startswith("error:")]
    assert len(errors) >= 3, done.output
    joined = "\n".join(errors)
    assert "segments.a.refresh" in joined and "templates.t.channel" in joined and "flows.f" in joined


def test_a_config_files_templates_are_honoured_and_imported_as_base_versions(tmp_path: Path,
                                                                            clock: ManualClock) -> None:
    config_file = tmp_path / "growth.yaml"
    config_file.write_text(yaml.safe_dump({"templates": {"hello_sms": {
        "channel": "sms", "th": {"body": "สวัสดี"}, "en": {"body": "Hello"}}}}, allow_unicode=True),
        encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'g.db'}"
    engine = _engine(url, clock, tmp_path, config_file)
    try:
        assert "hello_sms" in engine.flows.runner.templates
        first = engine.config_history()
        assert [(c.kind, c.key, c.changed_by) for c in first] == [("template", "hello_sms", "config file")]
        assert engine.reload_config() is None and len(engine.config_history()) == 1  # unchanged: not again
        config_file.write_text(config_file.read_text(encoding="utf-8").replace("Hello", "Hi"), encoding="utf-8")
        assert engine.reload_config() is None
        latest = engine.config_history()[0]
        assert latest.version == 2 and latest.body["en"] == {"body": "Hi"} and latest.before["en"] == {"body": "Hello"}
    finally:
        engine.close()


async def test_runs_in_flight_keep_the_flow_version_they_started_with(tmp_path: Path, clock: ManualClock) -> None:
    engine = _engine(f"sqlite:///{tmp_path / 'g.db'}", clock, tmp_path)
    two_steps = {"name": "Drip", "trigger": {"segment_entered": "camera_fans"},
                 "steps": [{"wait": {"for": "1d"}},
                           {"name": "later", "send": {"channel": "push", "kind": "marketing",
                                                      "template": "camera_fan_push"}}]}
    try:
        async with api_client(engine) as client:
            for path, body in (("segments/camera_fans", SEGMENT), ("templates/camera_fan_push", TEMPLATE),
                               ("flows/drip", two_steps)):
                assert (await client.put(f"/v1/config/{path}", json=body, headers=ADMIN)).status_code == 200
            story = Story(engine, clock)
            for user in ("early", "late"):
                story.identify(user, push_token="t", language="en", consent={"push": True})
            for listing in ("L1", "L2"):
                story.track("early", "item_viewed", listing_id=listing, category="cameras")
            edited = {**two_steps, "steps": [two_steps["steps"][0], {"name": "later", "send": {
                "channel": "push", "kind": "marketing", "template": "window_shopper_first_buy_push"}}]}
            assert (await client.put("/v1/config/flows/drip", json=edited, headers=ADMIN)).status_code == 200
            for listing in ("L1", "L2"):
                story.track("late", "item_viewed", listing_id=listing, category="cameras")
            await client.post("/v1/clock/advance", json={"by": "P1DT1H"}, headers=ADMIN)
            titles = {m["userId"]: m["title"] for m in messages(engine, flow="drip")}
            assert titles == {"early": "Cameras for you", "late": "Found something you like? 👀"}
    finally:
        engine.close()

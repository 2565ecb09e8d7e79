"""The stored config is shared by every process (CONTRACT.md 11): on the real clock a segment, a template and a flow
PUT to the API process reach ``growth serve``'s worker (a child process on SQLite), which evaluates the segment and
sends the new template."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.serve import clean_env, daytime_zone, serving
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": "Bearer config-admin"}
SEGMENT = {"name": "Camera fans", "refresh": "realtime", "event": "item_viewed", "where": {"category": "cameras"},
           "count": {"gte": 1}}
TEMPLATE = {"channel": "push", "th": {"title": "กล้องรอคุณอยู่", "body": "ดูกล้องใหม่ 📷"},
            "en": {"title": "Cameras for you", "body": "New cameras to see 📷"}}
FLOW = {"name": "Camera fans welcome", "trigger": {"segment_entered": "camera_fans"},
        "steps": [{"name": "hello", "send": {"channel": "push", "kind": "marketing", "template": "camera_fan_push"}}]}


def test_a_change_over_the_api_reaches_the_worker_process(tmp_path: Path) -> None:
    args = ["--db", f"sqlite:///{tmp_path / 'growth.db'}"]
    with serving(tmp_path, args, clean_env(api_key="config-admin")) as server, \
            httpx.Client(base_url=server.base_url, headers=ADMIN, timeout=30) as http:
        for path, body in (("segments/camera_fans", SEGMENT), ("templates/camera_fan_push", TEMPLATE),
                           ("flows/camera_fans_welcome", FLOW)):
            answer = http.put(f"/v1/config/{path}", json=body)
            assert answer.status_code == 200, answer.text
        assert "camera_fans" in {s["key"] for s in http.get("/v1/segments").json()}
        traits = {"push_token": "tok", "language": "en", "timezone": daytime_zone(), "consent": {"push": True}}
        batch = [{"type": "identify", "userId": "fan", "traits": traits},
                 {"type": "track", "userId": "fan", "event": "item_viewed",
                  "properties": {"listing_id": "L1", "category": "cameras", "title": "X100V"}}]
        assert http.post("/v1/batch", json={"batch": batch}).json()["accepted"] == 2

        def sent() -> list[dict[str, object]]:
            return list(http.get("/v1/messages", params={"flow": "camera_fans_welcome"}).json()["messages"])

        messages = wait_until(sent, what="the worker sending the flow stored over the API")
        assert [(m["userId"], m["title"], m["body"]) for m in messages] == \
            [("fan", "Cameras for you", "New cameras to see 📷")]
        assert http.get("/v1/users/fan").json()["segments"] == ["camera_fans"]

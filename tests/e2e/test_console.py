"""The marketer's console in a real browser (Playwright driving Debian's chromium) against a real ``growth serve``
on the manual clock (issue 15): a segment made in the editor with its live preview, a new template previewed in
Thai and English and sent as a test, a flow published on both, a broadcast scheduled on the calendar, and all of it
found again on the user page. Screenshots go to a temporary folder (``CONSOLE_SHOTS`` to choose it), never the
repository."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.serve import START, ServeProcess, clean_env, serving

pytestmark = pytest.mark.e2e

ADMIN_KEY = "e2e-console-admin"
WRITE_KEY = "e2e-console-write"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRITE = {"Authorization": f"Bearer {WRITE_KEY}"}
CONSENT = {"push": True, "email": True, "in_app": True}
SEGMENT = """name: "📷 Camera fans"
description: Viewed cameras at least twice
refresh: realtime
event: item_viewed
where: {category: cameras}
count: {gte: 2}
"""
TEMPLATE = """channel: push
description: A push for camera fans
th:
  title: "กล้องใหม่มาแล้ว 📷"
  body: "สวัสดีครับ กล้องที่คุณชอบมีรุ่นใหม่เข้ามาแล้ว ดูได้ที่ {{ site_url }}"
en:
  title: "New cameras are in 📷"
  body: "Hello! New models of the cameras you like just came in: {{ site_url }}"
"""
FLOW = """name: "📷 Camera fans welcome"
description: A push when someone becomes a camera fan
trigger: {segment_entered: camera_fans}
steps:
  - name: welcome_push
    send: {channel: push, kind: marketing, template: camera_fans_push}
  - wait: {for: 2d}
  - name: follow_up
    branch:
      if: {converted: true}
      then: []
      else:
        - name: second_push
          send: {channel: push, kind: marketing, template: camera_fans_push}
"""


def viewer(user: str, language: str, views: int, email: str | None = None) -> list[dict[str, Any]]:
    traits: dict[str, Any] = {"push_token": f"tok-{user}", "language": language, "consent": CONSENT}
    if email:
        traits["email"] = email
    calls: list[dict[str, Any]] = [{"type": "identify", "userId": user, "messageId": f"id-{user}", "traits": traits}]
    calls += [{"type": "track", "userId": user, "event": "item_viewed", "messageId": f"v-{user}-{i}",
               "properties": {"listing_id": f"L{i}", "category": "cameras", "title": "Fuji X100V", "price": 32000}}
              for i in range(views)]
    return calls


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("CONSOLE_SHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("console-shots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    tmp = tmp_path_factory.mktemp("console")
    env = clean_env(api_key=ADMIN_KEY, write_keys=WRITE_KEY)
    args = ["--db", f"sqlite:///{tmp / 'growth.db'}", "--clock", "manual", "--start", START]
    with serving(tmp, args, env, "console") as running, httpx.Client(base_url=running.base_url, timeout=30) as http:
        batch = viewer("fan-0", "th", 3, "fan0@example.test") + viewer("fan-1", "en", 2) + viewer("fan-2", "th", 4)
        batch += viewer("browser-3", "th", 1)
        response = http.post("/v1/batch", json={"batch": batch}, headers=WRITE)
        assert response.status_code == 200 and not response.json()["rejected"], response.text
        yield running


def test_a_marketer_builds_previews_publishes_and_finds_it_on_the_user_page(
        server: ServeProcess, browser: Any, shots: Path) -> None:
    base = server.base_url
    http = httpx.Client(base_url=base, timeout=30, headers=ADMIN)
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="th-TH")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    page.goto(f"{base}/dashboard/segments")
    page.fill("#key", ADMIN_KEY)
    page.click("#login-submit")
    page.wait_for_selector("#segments")

    # A segment in the editor: the live preview follows the text as it is typed, before anything is saved.
    page.click("#new-segment")
    page.fill("#key", "camera_fans")
    page.fill("#body", SEGMENT.replace("gte: 2", "gte: 4"))
    page.wait_for_selector('#preview-result[data-size="1"]')  # only fan-2 viewed four
    page.fill("#body", SEGMENT)
    page.wait_for_selector('#preview-result[data-size="3"]')
    sample = sorted(el.get_attribute("data-user") for el in page.query_selector_all("#preview-sample tr[data-user]"))
    assert sample == ["fan-0", "fan-1", "fan-2"]
    assert "item_viewed" in page.inner_text("#preview-sample")
    assert http.get("/v1/config/segments/camera_fans").status_code == 404  # a preview saves nothing
    shot("1-segment-editor-preview")
    page.click("#save")
    page.wait_for_selector("#saved")
    assert http.get("/v1/config/segments/camera_fans").json()["count"] == {"gte": 2}
    assert page.query_selector("#members-csv") is not None

    # A new template: previewed for a chosen user in Thai and English, saved, sent as a test.
    page.click('nav a[data-page="templates"]')
    page.click("#new-template")
    page.fill("#key", "camera_fans_push")
    page.fill("#body", TEMPLATE)
    page.fill("#user", "fan-1")
    page.wait_for_selector('.message-preview.own[data-lang="en"]')
    assert "กล้องใหม่มาแล้ว" in page.inner_text('.message-preview[data-lang="th"]')
    assert "New cameras are in" in page.inner_text('.message-preview[data-lang="en"]')
    shot("2-template-preview")
    page.click("#save")
    page.wait_for_selector("#saved")
    page.select_option("#test-channel", "push")
    page.click("#test-send")
    page.wait_for_selector('#test-result[data-sent="1"]')
    shot("3-template-test-send")
    tests = http.get("/v1/messages", params={"flow": "test"}).json()["messages"]
    assert [(m["userId"], m["status"], m["title"]) for m in tests] == [("fan-1", "sent", "New cameras are in 📷")]

    # A flow on both, published from the flow editor; a new camera fan enters it and is sent the push.
    page.click('nav a[data-page="flows"]')
    page.click("#new-flow")
    page.fill("#key", "camera_welcome")
    page.fill("#body", FLOW)
    page.click("#check")  # drawn from the draft, validated, not yet published
    page.wait_for_selector('#checked')
    page.wait_for_selector('.diagram[data-flow="camera_welcome"] li[data-step="second_push"]')
    assert http.get("/v1/config/flows/camera_welcome").status_code == 404
    page.click("#publish")
    page.wait_for_selector("#saved")
    page.wait_for_selector('.diagram[data-flow="camera_welcome"] li[data-step="second_push"]')
    response = httpx.post(f"{base}/v1/batch", json={"batch": viewer("fan-9", "th", 2)}, headers=WRITE, timeout=30)
    assert response.status_code == 200
    api = {f["key"]: f for f in http.get("/v1/flows").json()["flows"]}["camera_welcome"]
    # The run is past its wait: it waits (two days) to take the branch.
    assert api["steps"][0]["messages"] == {"sent": 1} and api["steps"][2]["waiting"] == 1
    page.click('nav a[data-page="flows"]')
    welcome = '.diagram[data-flow="camera_welcome"]'
    page.wait_for_selector(welcome)
    assert page.inner_text(f'{welcome} li[data-step="welcome_push"] > .box [data-count="sent"]').endswith(" 1")
    waiting = page.query_selector_all(f'{welcome} li[data-path="2"] > .box [data-count="waiting"]')
    assert len(waiting) == 1 and waiting[0].inner_text().endswith(" 1")
    page.query_selector('section[data-flow="camera_welcome"]').screenshot(path=str(shots / "4-flows-diagram.png"))

    # What would happen for fan-9 now: already in the flow, and today's push would be capped (one a local day).
    page.click('section[data-flow="camera_welcome"] a.path-link')
    page.fill("#path-user", "fan-9")
    page.click("#show-path")
    page.wait_for_selector('#path[data-flow="camera_welcome"][data-user="fan-9"][data-enters="0"]')
    assert page.query_selector('#path li[data-step="welcome_push"][data-action="suppress"]'
                               '[data-reason="frequency_cap"]') is not None
    assert page.query_selector('#path li[data-step="second_push"][data-action="send"]') is not None
    assert http.get("/v1/messages", params={"userId": "fan-9"}).json()["messages"][0]["flow"] == "camera_welcome"
    assert len(http.get("/v1/messages", params={"userId": "fan-9"}).json()["messages"]) == 1, "nothing sent"
    page.query_selector("#path").screenshot(path=str(shots / "4b-flow-path.png"))

    # A broadcast at 15:00 Bangkok time, on the calendar; sent when the clock gets there.
    page.click('nav a[data-page="broadcasts"]')
    page.fill("#bc-name", "Camera sale")
    page.select_option("#bc-segment", "camera_fans")
    page.select_option("#bc-template", "camera_fans_push")
    page.select_option("#bc-channel", "push")
    page.fill("#bc-at", "2026-01-05T15:00")
    page.click("#bc-submit")
    page.wait_for_selector("#created")
    broadcast_id = page.inner_text("#created code")
    cell = page.query_selector(f'#calendar td[data-day="5"] [data-broadcast="{broadcast_id}"]')
    assert cell is not None and "15:00" in cell.inner_text()
    stored = http.get(f"/v1/broadcasts/{broadcast_id}").json()
    assert stored["members"] == 4 and stored["sendAt"].startswith("2026-01-05T08:00:00")
    shot("5-broadcast-scheduled")
    assert http.post("/v1/clock/advance", json={"to": "2026-01-05T16:00:00+07:00"}).status_code == 200
    page.reload()
    counts = http.get(f"/v1/broadcasts/{broadcast_id}").json()["counts"]
    assert counts["messages"] == 4 and counts["sent"] >= 2  # the gate may hold some (fan-1 and fan-9 had a push)
    row = page.query_selector(f'#broadcasts tr[data-broadcast="{broadcast_id}"]')
    assert row is not None and row.get_attribute("data-sent") == str(counts["sent"])
    assert int(row.query_selector('[data-count="held"]').inner_text()) == counts["byStatus"].get("scheduled", 0)
    shot("6-broadcast-sent")

    # The user page, found by email: profile, the timeline with the broadcast's message, segments with reasons.
    page.click('nav a[data-page="users"]')
    page.fill("#q", "FAN0@example.test")
    page.press("#q", "Enter")
    page.wait_for_selector("#user-id")
    assert page.inner_text("#user-id") == "fan-0"
    assert "item_viewed" in page.inner_text('#user-segments tr[data-segment="camera_fans"]')
    messages = page.query_selector_all('#timeline tr[data-kind="message"]')
    assert any("broadcast" in m.inner_text() and broadcast_id in m.inner_text() for m in messages)
    assert len(page.query_selector_all('#timeline tr[data-kind="event"]')) == 4
    assert page.query_selector('#send-times tr[data-channel="push"]') is not None
    assert re.search(r"2569", page.inner_text("#timeline"))  # Thai dates, Buddhist era
    shot("7-user-page")
    page.click("#lang-switch")
    page.wait_for_selector("#user-id")
    assert "Timeline of events and messages" in page.inner_text("main")
    shot("8-user-page-en")

    # The members as CSV, from the segment editor's link.
    page.goto(f"{base}/dashboard/segments/edit?key=camera_fans")
    with page.expect_download() as download:
        page.click("#members-csv")
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "user_id,entity,since,reason" and len(text.splitlines()) == 5
    assert problems == [], problems
    context.close()
    http.close()

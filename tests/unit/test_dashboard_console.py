"""The marketer's console on the dashboard (issue 15) over HTTP, in process: every new page, its forms (CSRF
included) and the CSV exports, checked against what the config API then says."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from growthengine.api.app import create_app
from growthengine.api.auth import KeyRing
from growthengine.engine import Engine
from tests.unit.api_client import ADMIN, ADMIN_KEY, WRITE, WRITE_KEY

pytestmark = pytest.mark.anyio
CONSENT = {"push": True, "email": True, "in_app": True}
SEGMENT = """name: Camera fans
refresh: realtime
event: item_viewed
where: {category: cameras}
count: {gte: 2}
"""
TEMPLATE = """channel: push
description: camera fans
th:
  title: "กล้องใหม่มาแล้ว"
  body: "สวัสดีครับ ดูกล้องใหม่ได้ที่ {{ site_url }}"
en:
  title: "New cameras are in"
  body: "Hello! See the new cameras at {{ site_url }}"
"""
FLOW = """name: Camera fans welcome
trigger: {segment_entered: camera_fans}
steps:
  - name: welcome_push
    send: {channel: push, kind: marketing, template: camera_fans_push}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def signed_in(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, KeyRing.from_keys([ADMIN_KEY], [WRITE_KEY]), run_workers=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        await feed(client)
        signed = await client.post("/dashboard/login", data={"key": ADMIN_KEY, "next": "/"})
        assert signed.status_code == 303, signed.text
        yield client


@pytest.fixture
async def http(any_engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in to the dashboard of an engine on each database, with four camera viewers (one a big buyer)
    stored."""
    async with signed_in(any_engine) as client:
        yield client


async def feed(client: httpx.AsyncClient) -> None:
    batch: list[dict[str, Any]] = []
    for n, language in enumerate(["th", "en", "th", "th"]):
        user = f"fan-{n}"
        batch.append({"type": "identify", "userId": user, "traits": {
            "email": f"Fan_{n}@Example.test", "push_token": f"tok-{n}", "language": language, "consent": CONSENT}})
        views = 3 if n < 3 else 1  # fan-3 viewed one camera only
        if n == 0:
            batch.append({"type": "track", "userId": user, "event": "purchase",
                          "properties": {"order_id": "o-1", "amount": 6000, "listing_ids": ["L9"]}})
        batch += [{"type": "track", "userId": user, "event": "item_viewed",
                   "properties": {"listing_id": f"L{i}", "category": "cameras", "price": 900}} for i in range(views)]
    response = await client.post("/v1/batch", json={"batch": batch}, headers=WRITE)
    assert response.status_code == 200 and not response.json()["rejected"], response.text


def csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


async def token(client: httpx.AsyncClient, path: str = "/dashboard/segments/edit") -> str:
    return csrf(await client.get(path))


async def test_every_new_page_asks_for_a_session_first(engine: Engine) -> None:
    app = create_app(engine, KeyRing.from_keys([ADMIN_KEY], [WRITE_KEY]), run_workers=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        for path in ("/dashboard/segments/edit", "/dashboard/flows/edit", "/dashboard/templates",
                     "/dashboard/templates/edit", "/dashboard/broadcasts", "/dashboard/users",
                     "/dashboard/users/fan-0", "/dashboard/segments/high_ltv/members.csv", "/dashboard/messages.csv"):
            response = await client.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/dashboard/login"), path
        posted = await client.post("/dashboard/segments/edit", data={"key": "x", "body": SEGMENT, "action": "save"})
        assert posted.status_code == 303 and posted.headers["location"].startswith("/dashboard/login")


async def test_a_form_without_the_sessions_token_changes_nothing(http: httpx.AsyncClient) -> None:
    for path, form in [("/dashboard/segments/edit", {"key": "camera_fans", "body": SEGMENT, "action": "save"}),
                       ("/dashboard/templates/edit", {"key": "t1", "body": TEMPLATE, "action": "save"}),
                       ("/dashboard/broadcasts", {"name": "x", "segment": "high_ltv", "template": "t1",
                                                  "channel": "push", "when": "best_time"})]:
        for forged in ({}, {"csrf": "0" * 64}):
            response = await http.post(path, data={**form, **forged})
            assert response.status_code == 403, (path, response.text)
            assert "reload" in response.text or "โหลดหน้าใหม่" in response.text
    assert (await http.get("/v1/config/segments/camera_fans", headers=ADMIN)).status_code == 404
    assert (await http.get("/v1/config/templates/t1", headers=ADMIN)).status_code == 404


async def test_the_segment_editor_previews_a_draft_then_saves_it(http: httpx.AsyncClient) -> None:
    page = await http.get("/dashboard/segments/edit")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    form = {"csrf": csrf(page), "key": "camera_fans", "body": SEGMENT}
    fragment = await http.post("/dashboard/segments/preview", data=form)
    assert fragment.status_code == 200
    assert 'data-size="3"' in fragment.text and 'data-exact="1"' in fragment.text
    assert {f"fan-{n}" for n in range(3)} == set(re.findall(r'data-user="([^"]+)"', fragment.text))
    assert "item_viewed" in fragment.text  # each member's reason
    assert (await http.get("/v1/config/segments/camera_fans", headers=ADMIN)).status_code == 404  # nothing saved
    # The same preview without script (the form's Preview button) is the whole page.
    whole = await http.post("/dashboard/segments/edit", data={**form, "action": "preview"})
    assert whole.status_code == 200 and 'data-size="3"' in whole.text and 'id="segment-form"' in whole.text

    saved = await http.post("/dashboard/segments/edit", data={**form, "action": "save"})
    assert saved.status_code == 303 and saved.headers["location"] == "/dashboard/segments/edit?key=camera_fans&saved=1"
    stored = (await http.get("/v1/config/segments/camera_fans", headers=ADMIN)).json()
    assert stored["event"] == "item_viewed" and stored["count"] == {"gte": 2}
    history = (await http.get("/v1/config/history", params={"key": "camera_fans"}, headers=ADMIN)).json()
    assert [c["changedBy"] for c in history["changes"]] == ["dashboard"]
    after = await http.get(saved.headers["location"])
    assert 'id="saved"' in after.text and 'id="history"' in after.text and "dashboard" in after.text
    assert (await http.get("/v1/segments", headers=ADMIN)).status_code == 200
    members = (await http.get("/v1/segments/camera_fans/members", headers=ADMIN)).json()
    assert sorted(members["members"]) == ["fan-0", "fan-1", "fan-2"]


async def test_the_editors_list_every_problem_and_store_nothing(http: httpx.AsyncClient) -> None:
    form = {"csrf": await token(http), "action": "save"}
    broken_yaml = await http.post("/dashboard/segments/edit", data={**form, "key": "s1", "body": "name: [x"})
    assert broken_yaml.status_code == 422 and 'id="problems"' in broken_yaml.text and "line" in broken_yaml.text
    wrong = await http.post("/dashboard/segments/edit", data={**form, "key": "s1",
                                                               "body": "name: S\nrefresh: weekly\nevent: x\n"})
    assert wrong.status_code == 422 and "refresh" in wrong.text
    bad_key = await http.post("/dashboard/segments/edit", data={**form, "key": "no spaces", "body": SEGMENT})
    assert bad_key.status_code == 422
    flow = await http.post("/dashboard/flows/edit", data={**form, "key": "f1", "body": FLOW})
    assert flow.status_code == 422 and "camera_fans" in flow.text  # neither the segment nor the template exists
    assert (await http.get("/v1/config/history", headers=ADMIN)).json()["changes"] == []


async def test_a_template_is_previewed_in_thai_and_english_and_sent_as_a_test(http: httpx.AsyncClient) -> None:
    page = await http.get("/dashboard/templates/edit")
    form = {"csrf": csrf(page), "key": "camera_fans_push", "body": TEMPLATE, "user": "fan-1"}
    preview = await http.post("/dashboard/templates/preview", data=form)  # the draft, not saved yet
    assert preview.status_code == 200, preview.text
    assert "กล้องใหม่มาแล้ว" in preview.text and "New cameras are in" in preview.text
    assert 'class="message-preview own" data-lang="en"' in preview.text  # fan-1 reads English
    unknown = await http.post("/dashboard/templates/preview", data={**form, "user": "nobody"})
    assert "nobody" in unknown.text and 'id="problems"' in unknown.text
    saved = await http.post("/dashboard/templates/edit", data={**form, "action": "save"})
    assert saved.status_code == 303
    assert (await http.get("/v1/config/templates/camera_fans_push", headers=ADMIN)).json()["channel"] == "push"
    listed = await http.get("/dashboard/templates")
    assert listed.status_code == 200 and 'data-key="camera_fans_push"' in listed.text

    sent = await http.post("/dashboard/templates/edit", data={**form, "action": "test", "channel": "push"})
    assert sent.status_code == 200 and 'data-sent="1"' in sent.text, sent.text
    tests = (await http.get("/v1/messages", params={"flow": "test"}, headers=ADMIN)).json()["messages"]
    assert [(m["userId"], m["channel"], m["status"]) for m in tests] == [("fan-1", "push", "sent")]
    assert tests[0]["title"] == "New cameras are in"
    wrong_channel = await http.post("/dashboard/templates/edit",
                                        data={**form, "action": "test", "channel": "email"})
    assert wrong_channel.status_code == 422 and "push" in wrong_channel.text


async def test_a_published_flow_is_drawn_with_its_live_counts(http: httpx.AsyncClient) -> None:
    form = {"csrf": await token(http), "action": "save"}
    assert (await http.post("/dashboard/segments/edit", data={**form, "key": "camera_fans",
                                                              "body": SEGMENT})).status_code == 303
    assert (await http.post("/dashboard/templates/edit", data={**form, "key": "camera_fans_push",
                                                               "body": TEMPLATE})).status_code == 303
    checked = await http.post("/dashboard/flows/edit", data={**form, "key": "camera_welcome", "body": FLOW,
                                                              "action": "check"})
    assert checked.status_code == 200 and 'id="checked"' in checked.text
    assert 'data-flow="camera_welcome"' in checked.text and 'data-step="welcome_push"' in checked.text
    assert (await http.get("/v1/config/flows/camera_welcome", headers=ADMIN)).status_code == 404  # not published
    published = await http.post("/dashboard/flows/edit", data={**form, "key": "camera_welcome", "body": FLOW})
    assert published.status_code == 303, published.text
    # The flow starts for those who enter the segment from now on.
    more = [{"type": "identify", "userId": "fan-9", "traits": {"push_token": "t9", "consent": CONSENT}}] + [
        {"type": "track", "userId": "fan-9", "event": "item_viewed",
         "properties": {"listing_id": f"M{i}", "category": "cameras"}} for i in range(2)]
    assert (await http.post("/v1/batch", json={"batch": more}, headers=WRITE)).status_code == 200
    api = {f["key"]: f for f in (await http.get("/v1/flows", headers=ADMIN)).json()["flows"]}
    sent = api["camera_welcome"]["steps"][0]["messages"].get("sent", 0)
    assert sent >= 1
    page = await http.get("/dashboard/flows")
    assert page.status_code == 200
    box = re.search(r'<div class="diagram" data-flow="camera_welcome">(.*?)</ol>', page.text, re.S)
    assert box is not None and 'data-step="welcome_push"' in box.group(1)
    assert re.search(rf'data-count="sent">[^<]*{sent}<', box.group(1))
    editor = await http.get("/dashboard/flows/edit", params={"key": "camera_welcome"})
    assert editor.status_code == 200 and 'data-flow="camera_welcome"' in editor.text
    assert "enters camera_fans" in editor.text


async def test_a_broadcast_is_scheduled_and_shown_on_its_calendar(http: httpx.AsyncClient) -> None:
    form = {"csrf": await token(http, "/dashboard/broadcasts"), "action": "save"}
    assert (await http.post("/dashboard/segments/edit", data={**form, "key": "camera_fans",
                                                              "body": SEGMENT})).status_code == 303
    assert (await http.post("/dashboard/templates/edit", data={**form, "key": "camera_fans_push",
                                                               "body": TEMPLATE})).status_code == 303
    order = {"csrf": form["csrf"], "name": "Camera sale", "segment": "camera_fans", "template": "camera_fans_push",
             "channel": "email", "when": "at", "at": "2026-01-05T15:00"}
    refused = await http.post("/dashboard/broadcasts", data=order)
    assert refused.status_code == 422 and "push" in refused.text  # the template is for push: shown, nothing made
    assert 'data-broadcast="' not in refused.text
    # 15:00 in Bangkok on the engine's day: read in the business time zone, not UTC.
    made = await http.post("/dashboard/broadcasts", data={**order, "channel": "push"})
    assert made.status_code == 303, made.text
    broadcast_id = re.search(r"created=(bc_[0-9a-f]+)", made.headers["location"]).group(1)  # type: ignore[union-attr]
    api = (await http.get(f"/v1/broadcasts/{broadcast_id}", headers=ADMIN)).json()
    assert api["members"] == 3 and api["sendAt"].startswith("2026-01-05T08:00:00")
    page = await http.get(made.headers["location"])
    assert page.status_code == 200 and f'data-broadcast="{broadcast_id}"' in page.text
    assert 'data-day="5"' in page.text and "มกราคม 2569" in page.text
    row = re.search(rf'<tr data-broadcast="{broadcast_id}" data-sent="(\d+)" data-members="3">', page.text)
    assert row is not None and row.group(1) == "0"
    await http.post("/v1/clock/advance", json={"to": "2026-01-05T16:00:00+07:00"}, headers=ADMIN)
    page = await http.get("/dashboard/broadcasts", params={"month": "2026-01", "lang": "en"})
    row = re.search(rf'<tr data-broadcast="{broadcast_id}" data-sent="(\d+)"', page.text)
    assert row is not None and row.group(1) == "3" and "January 2026" in page.text


async def test_a_user_is_found_by_email_and_shown_with_timeline_segments_and_scores(
        http: httpx.AsyncClient) -> None:
    http = http
    found = await http.get("/dashboard/users", params={"q": "fan_0@example.TEST"})
    assert found.status_code == 303 and found.headers["location"] == "/dashboard/users/fan-0"
    listed = await http.get("/dashboard/users", params={"q": "fan-"})
    assert listed.status_code == 200 and len(re.findall(r'<tr data-user=', listed.text)) == 4
    assert "no-one" not in (await http.get("/dashboard/users", params={"q": "%"})).text
    assert 'data-user=' not in (await http.get("/dashboard/users", params={"q": "_"})).text  # LIKE taken literally
    page = await http.get("/dashboard/users/fan-0")
    assert page.status_code == 200
    assert 'data-segment="high_ltv"' in page.text and "purchase" in page.text
    assert page.text.count('data-kind="event"') == 5  # identify, a purchase and three views
    assert 'id="send-times"' in page.text and 'data-channel="push"' in page.text
    assert "2569" in page.text  # Thai dates in the Buddhist era, Bangkok time
    english = await http.get("/dashboard/users/fan-0", params={"lang": "en"})
    assert "Timeline of events and messages" in english.text and "2026" in english.text
    assert (await http.get("/dashboard/users/nobody")).status_code == 404


async def test_csv_exports_of_members_and_messages(http: httpx.AsyncClient) -> None:
    http = http
    form = {"csrf": await token(http), "action": "save"}
    members = await http.get("/dashboard/segments/high_ltv/members.csv")
    assert members.status_code == 200 and members.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in members.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(members.content.decode("utf-8-sig"))))
    assert rows[0] == ["user_id", "entity", "since", "reason"]
    assert [r[0] for r in rows[1:]] == ["fan-0"]
    assert rows[1][2] == "2026-01-05T09:00:00+07:00" and "purchase" in rows[1][3]
    assert (await http.get("/dashboard/segments/nope/members.csv")).status_code == 404

    await http.post("/dashboard/templates/edit", data={**form, "key": "formula", "body": TEMPLATE.replace(
        'title: "New cameras are in"', 'title: "=HYPERLINK(1)"')})
    await http.post("/dashboard/templates/edit", data={**form, "key": "formula", "action": "test", "channel": "push",
                                                        "user": "fan-1"})
    messages = await http.get("/dashboard/messages.csv", params={"flow": "test"})
    assert messages.status_code == 200 and messages.headers["content-type"] == "text/csv; charset=utf-8"
    table = list(csv.DictReader(io.StringIO(messages.content.decode("utf-8-sig"))))
    assert len(table) == 1 and table[0]["user_id"] == "fan-1" and table[0]["channel"] == "push"
    assert table[0]["title"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert dt.datetime.fromisoformat(table[0]["scheduled_at"]).utcoffset() == dt.timedelta(hours=7)
    none = await http.get("/dashboard/messages.csv", params={"flow": "nothing-like-it"})
    assert none.content.decode("utf-8-sig").strip().count("\n") == 0


async def test_the_flow_editor_shows_what_would_happen_for_a_user(http: httpx.AsyncClient) -> None:
    """The saved first-buy nudge and a draft of it, walked for fan-1 (English) as of Mon 5 Jan 2026 09:00 ICT:
    the wait's local time in Thai (the dashboard's default) or English, the push's decision; nothing saved."""
    from growthengine.gate.bucketing import in_holdout

    listed = await http.get("/dashboard/flows")
    assert 'href="/dashboard/flows/edit?key=first_buy_nudge#path-form"' in listed.text
    page = await http.get("/dashboard/flows/edit", params={"key": "first_buy_nudge"})
    assert 'id="path-form"' in page.text
    saved = (await http.get("/v1/config/flows/first_buy_nudge", headers=ADMIN)).json()
    body = page.text.split('id="body"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0]
    form = {"csrf": csrf(page), "key": "first_buy_nudge", "body": body.replace("&#39;", "'").replace("&#34;", '"'),
            "user": "fan-1", "action": "path"}
    shown = await http.post("/dashboard/flows/edit", data=form)
    assert shown.status_code == 200, shown.text
    assert 'data-flow="first_buy_nudge" data-user="fan-1" data-enters="0"' in shown.text
    assert "ไม่เข้าโฟลว์" in shown.text and "not in segment window_shoppers now" in shown.text
    assert re.search(r'data-type="wait".*?รอถึง <span class="path-time">5 ม.ค. 2569 19:00</span>', shown.text, re.S)
    held = in_holdout("first_buy_nudge", "fan-1", 10)
    action = "suppress" if held else "send"
    assert f'data-step="first_buy_push" data-type="send" data-action="{action}"' in shown.text, shown.text
    assert "Found something you like? 👀" in shown.text, "fan-1 reads English"
    assert 'data-rule="consent" data-passes="1"' in shown.text

    english = await http.post("/dashboard/flows/edit?lang=en", data=form)
    assert "Does not enter" in english.text and "waits until <span class=\"path-time\">5 Jan 2026, 19:00</span>" \
        in english.text

    draft = await http.post("/dashboard/flows/edit", data={**form, "body": form["body"].replace("19:00", "21:30")})
    assert "5 Jan 2026, 21:30" in draft.text, "the draft in the editor is walked (in English: the choice sticks)"
    assert (await http.get("/v1/config/flows/first_buy_nudge", headers=ADMIN)).json() == saved  # not saved
    assert (await http.get("/v1/messages", params={"userId": "fan-1", "flow": "first_buy_nudge"},
                               headers=ADMIN)).json()["messages"] == []

    unknown = await http.post("/dashboard/flows/edit", data={**form, "user": "nobody"})
    assert unknown.status_code == 422 and 'id="problems"' in unknown.text and "nobody" in unknown.text
    forged = await http.post("/dashboard/flows/edit", data={**form, "csrf": "0" * 64})
    assert forged.status_code == 403
